// Package bfl describes Black Forest Labs' API as data: the endpoints this
// product uses, their fields with ranges, enums and defaults, the task status
// values, the request and response shapes, and the API's error format.
//
// It is pure Go (no go-app, no syscall/js) so the browser app validates forms
// with it and the proxy's simulator validates requests with the same rules.
package bfl

// Type is the JSON type of a field.
type Type string

const (
	String  Type = "string"
	Integer Type = "integer"
	Number  Type = "number"
	Boolean Type = "boolean"
)

// Format refines a string field: what the string holds.
type Format string

const (
	FormatNone        Format = ""
	FormatURI         Format = "uri"
	FormatBase64Image Format = "base64-image" // an image encoded as base64
	FormatBase64ZIP   Format = "base64-zip"   // a ZIP archive encoded as base64
	FormatAspectRatio Format = "aspect-ratio" // "W:H", between 21:9 and 9:21
)

// Field is one request field (a JSON body property or a query parameter).
type Field struct {
	Name     string
	Type     Type
	Format   Format
	Required bool
	Nullable bool
	// Min and Max bound numbers; nil means unbounded.
	Min, Max *float64
	// MultipleOf constrains integers (e.g. width to multiples of 32); 0 means none.
	MultipleOf float64
	// MinLength and MaxLength bound strings; 0 means unbounded.
	MinLength, MaxLength int
	// Enum lists the allowed values as JSON values: strings, or float64 for
	// integer fields, so they compare directly with decoded JSON.
	Enum []any
	// Default is the API's default as a JSON value (string, float64, bool), or nil.
	Default any
	// Hint is one line a form shows under the field.
	Hint string
}

// Kind says what an endpoint does, so the UI and the simulator can group them.
type Kind string

const (
	KindFinetune Kind = "finetune" // starts a training task
	KindGenerate Kind = "generate" // starts an image task with a finetuned model
	KindResult   Kind = "result"   // get_result
	KindManage   Kind = "manage"   // my_finetunes, finetune_details, delete_finetune
	KindAccount  Kind = "account"  // credits
)

// Endpoint is one BFL API operation.
type Endpoint struct {
	// Name is the path after /v1/, e.g. "flux-pro-1.1-ultra-finetuned".
	Name   string
	Method string // "GET" or "POST"
	Kind   Kind
	// Legacy endpoints are in the 2025 OpenAPI snapshot only; BFL may have removed them.
	Legacy bool
	// Fields are body properties for POST and query parameters for GET.
	Fields  []Field
	Summary string
}

// Path is the endpoint's path on a BFL host, e.g. "/v1/credits".
func (e Endpoint) Path() string { return "/v1/" + e.Name }

// Field returns the named field.
func (e Endpoint) Field(name string) (Field, bool) {
	for _, f := range e.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}
