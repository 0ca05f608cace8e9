package bfl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func mustLookup(t testing.TB, name string) Endpoint {
	t.Helper()
	e, ok := Lookup(name)
	if !ok {
		t.Fatalf("Lookup(%q) found nothing", name)
	}
	return e
}

func TestDefaultAndSampleBodiesAreValid(t *testing.T) {
	for _, e := range Catalog() {
		if e.Method != "POST" {
			continue
		}
		if got := e.Validate(marshal(t, defaultBody(t, e))); len(got) != 0 {
			t.Errorf("%s: defaults gave issues %v", e.Name, got)
		}
		full := map[string]any{}
		for _, f := range e.Fields {
			full[f.Name] = sampleValue(t, f)
		}
		if got := e.Validate(marshal(t, full)); len(got) != 0 {
			t.Errorf("%s: samples of every field gave issues %v", e.Name, got)
		}
	}
}

func TestValidateFieldRules(t *testing.T) {
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0}
	webp := []byte("RIFF\x24\x00\x00\x00WEBPVP8 ")
	cases := []struct {
		endpoint, field string
		value           any // deleteField removes the field
		typ, msg        string
	}{
		{"flux-pro-finetuned", "finetune_id", deleteField, "missing", "Field required"},
		{"flux-pro-finetuned", "steps", 3.0, "", ""},
		{"flux-pro-finetuned", "steps", json.Number("3.0"), "", ""},
		{"flux-pro-finetuned", "steps", "12", "", ""},
		{"flux-pro-finetuned", "steps", 3.5, "int_from_float", "Input should be a valid integer, got a number with a fractional part"},
		{"flux-pro-finetuned", "steps", "many", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"},
		{"flux-pro-finetuned", "steps", "0x10", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"},
		{"flux-pro-finetuned", "steps", true, "int_type", "Input should be a valid integer"},
		{"flux-pro-finetuned", "steps", 0, "greater_than_equal", "Input should be greater than or equal to 1"},
		{"flux-pro-finetuned", "steps", 51, "less_than_equal", "Input should be less than or equal to 50"},
		{"flux-pro-finetuned", "width", 1440, "", ""},
		{"flux-pro-finetuned", "width", 300, "multiple_of", "Input should be a multiple of 32"},
		{"flux-pro-finetuned", "width", 224, "greater_than_equal", "Input should be greater than or equal to 256"},
		{"flux-pro-finetuned", "height", 1472, "less_than_equal", "Input should be less than or equal to 1440"},
		{"flux-pro-finetuned", "guidance", 1.5, "", ""},
		{"flux-pro-finetuned", "guidance", 1.49, "greater_than_equal", "Input should be greater than or equal to 1.5"},
		{"flux-pro-finetuned", "guidance", "strong", "float_parsing", "Input should be a valid number, unable to parse string as a number"},
		{"flux-pro-finetuned", "guidance", []any{}, "float_type", "Input should be a valid number"},
		{"flux-pro-finetuned", "guidance", json.Number("1e999"), "finite_number", "Input should be a finite number"},
		{"flux-pro-finetuned", "prompt", 5, "string_type", "Input should be a valid string"},
		{"flux-pro-finetuned", "prompt_upsampling", "yes", "", ""},
		{"flux-pro-finetuned", "prompt_upsampling", "maybe", "bool_parsing", "Input should be a valid boolean, unable to interpret input"},
		{"flux-pro-finetuned", "prompt_upsampling", 2, "bool_parsing", "Input should be a valid boolean, unable to interpret input"},
		{"flux-pro-finetuned", "prompt_upsampling", map[string]any{}, "bool_type", "Input should be a valid boolean"},
		{"flux-pro-finetuned", "output_format", "gif", "enum", "Input should be 'jpeg' or 'png'"},
		{"flux-pro-finetuned", "output_format", "webp", "enum", "Input should be 'jpeg' or 'png'"},
		{"flux-pro-finetuned", "seed", nil, "int_type", "Input should be a valid integer"},
		{"flux-pro-finetuned", "seed", 123456789012, "", ""},
		{"flux-pro-finetuned", "image_prompt", nil, "", ""},
		{"flux-pro-finetuned", "image_prompt", b64(jpeg), "", ""},
		{"flux-pro-finetuned", "image_prompt", base64.RawStdEncoding.EncodeToString(webp), "", ""},
		{"flux-pro-finetuned", "image_prompt", "!!not base64!!", "base64_decode", ""},
		{"flux-pro-finetuned", "image_prompt", b64([]byte("GIF89a-------")), "value_error", "Value error, the decoded data should be an image (PNG, JPEG or WebP)"},
		{"flux-pro-finetuned", "image_prompt", "", "value_error", "Value error, the decoded data should be an image (PNG, JPEG or WebP)"},
		{"flux-pro-finetuned", "webhook_url", "", "string_too_short", "String should have at least 1 character"},
		{"flux-pro-finetuned", "webhook_url", "https://x.example/" + strings.Repeat("a", 2066), "string_too_long", "String should have at most 2083 characters"},
		{"flux-pro-finetuned", "webhook_url", "ftp://x.example/hook", "url_scheme", "URL scheme should be 'http' or 'https'"},
		{"flux-pro-finetuned", "webhook_url", "not a url", "url_parsing", "Input should be a valid URL, relative URL without a base"},
		{"flux-pro-finetuned", "webhook_url", "https://", "url_parsing", "Input should be a valid URL, empty host"},
		{"flux-pro-finetuned", "webhook_url", "http://[::1", "url_parsing", "Input should be a valid URL, missing ']' in host"},
		{"flux-pro-finetuned", "webhook_url", "mailto:me@example.com", "url_scheme", "URL scheme should be 'http' or 'https'"},
		{"flux-pro-finetuned", "image_prompt", "data:image/png;base64," + b64(pngData(t)), "base64_decode", "Base64 decoding error: send the bare base64 without the data: URL prefix"},
		{"flux-pro-1.1-ultra-finetuned", "seed", nil, "", ""},
		{"flux-pro-1.1-ultra-finetuned", "prompt", nil, "", ""},
		{"flux-pro-1.1-ultra-finetuned", "output_format", "webp", "", ""},
		{"flux-pro-1.1-ultra-finetuned", "output_format", "gif", "enum", "Input should be 'jpeg', 'png' or 'webp'"},
		{"flux-pro-1.1-ultra-finetuned", "aspect_ratio", "9:21", "", ""},
		{"flux-pro-1.1-ultra-finetuned", "aspect_ratio", "22:9", "value_error", `Value error, aspect ratio "22:9" should be between 21:9 and 9:21`},
		{"flux-pro-1.1-ultra-finetuned", "aspect_ratio", "16x9", "value_error", `Value error, aspect ratio "16x9" should be written W:H, e.g. 16:9`},
		{"flux-pro-1.1-ultra-finetuned", "image_prompt_strength", 1.01, "less_than_equal", "Input should be less than or equal to 1"},
		{"flux-pro-1.1-ultra-finetuned", "aspect_ratio", nil, "string_type", "Input should be a valid string"},
		{"flux-pro-1.0-fill-finetuned", "image", deleteField, "missing", "Field required"},
		{"flux-pro-1.0-fill-finetuned", "mask", nil, "", ""},
		{"flux-pro-1.0-fill-finetuned", "steps", 14, "greater_than_equal", "Input should be greater than or equal to 15"},
		{"finetune", "file_data", b64(pngData(t)), "value_error", "Value error, the decoded data should be a ZIP archive"},
		{"finetune", "lora_rank", 24, "enum", "Input should be 16 or 32"},
		{"finetune", "lora_rank", 16, "", ""},
		{"finetune", "learning_rate", nil, "", ""},
		{"finetune", "learning_rate", 0.01, "less_than_equal", "Input should be less than or equal to 0.005"},
		{"finetune", "learning_rate", 0, "greater_than_equal", "Input should be greater than or equal to 1e-06"},
		{"finetune", "mode", "portrait", "enum", "Input should be 'general', 'character', 'style' or 'product'"},
		{"finetune", "finetune_comment", deleteField, "missing", "Field required"},
		{"finetune", "finetune_comment", nil, "string_type", "Input should be a valid string"},
		{"flux-pro-1.0-canny-finetuned", "canny_low_threshold", nil, "", ""},
		{"flux-pro-1.0-canny-finetuned", "canny_high_threshold", 501, "less_than_equal", "Input should be less than or equal to 500"},
		{"flux-pro-1.0-depth-finetuned", "control_image", deleteField, "missing", "Field required"},
		{"delete_finetune", "finetune_id", 42, "string_type", "Input should be a valid string"},
	}
	for _, c := range cases {
		e := mustLookup(t, c.endpoint)
		body := defaultBody(t, e)
		if c.value == deleteField {
			delete(body, c.field)
		} else {
			body[c.field] = c.value
		}
		got := e.Validate(marshal(t, body))
		if c.typ == "" {
			if len(got) != 0 {
				t.Errorf("%s %s=%v: want no issue, got %v", c.endpoint, c.field, c.value, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s %s=%v: want one %s issue, got %v", c.endpoint, c.field, c.value, c.typ, got)
			continue
		}
		is := got[0]
		if !reflect.DeepEqual(is.Loc, []any{"body", c.field}) || is.Type != c.typ || (c.msg != "" && is.Msg != c.msg) {
			t.Errorf("%s %s=%v: got %#v, want loc [body %s] type %s msg %q", c.endpoint, c.field, c.value, is, c.field, c.typ, c.msg)
		}
	}
}

// deleteField marks a case that removes the field instead of setting it.
const deleteField = "\x00delete"

// NumberValue and BoolValue read what validation accepts, as pydantic would
// hand it to BFL's server, and refuse exactly what validation refuses as not
// a number or not a boolean.
func TestNumberAndBoolValue(t *testing.T) {
	numbers := []struct {
		raw  any
		want float64
		ok   bool
	}{
		{json.Number("1000"), 1000, true},
		{json.Number("-2.5e3"), -2500, true},
		{json.Number("1e999"), math.Inf(1), true},
		{1.5, 1.5, true},
		{"42", 42, true},
		{" -1e3 ", -1000, true},
		{"0x10", 0, false},
		{"Inf", 0, false},
		{"1_000", 0, false},
		{"", 0, false},
		{true, 0, false},
		{nil, 0, false},
		{[]any{}, 0, false},
	}
	field := Field{Name: "n", Type: Number}
	for _, c := range numbers {
		if got, ok := NumberValue(c.raw); got != c.want || ok != c.ok {
			t.Errorf("NumberValue(%#v) = %v, %v; want %v, %v", c.raw, got, ok, c.want, c.ok)
		}
		issue, bad := field.checkNumber(c.raw, false)
		if unreadable := bad && (issue.Type == "float_type" || issue.Type == "float_parsing"); unreadable == c.ok {
			t.Errorf("%#v: validation says %#v, NumberValue ok %v", c.raw, issue, c.ok)
		}
	}
	bools := []struct {
		raw      any
		want, ok bool
	}{
		{true, true, true},
		{false, false, true},
		{"yes", true, true},
		{" T ", true, true},
		{"1", true, true},
		{"Off", false, true},
		{"n", false, true},
		{json.Number("1"), true, true},
		{json.Number("0"), false, true},
		{json.Number("2"), false, false},
		{"maybe", false, false},
		{1.0, false, false},
		{nil, false, false},
	}
	for _, c := range bools {
		if got, ok := BoolValue(c.raw); got != c.want || ok != c.ok {
			t.Errorf("BoolValue(%#v) = %v, %v; want %v, %v", c.raw, got, ok, c.want, c.ok)
		}
		if _, bad := checkBool(c.raw); bad == c.ok {
			t.Errorf("%#v: validation refuses it %v, BoolValue ok %v", c.raw, bad, c.ok)
		}
	}
}

func TestValidateWholeBody(t *testing.T) {
	e := mustLookup(t, "flux-pro-1.1-ultra-finetuned")
	cases := []struct {
		body string
		want ValidationIssue
	}{
		{"", ValidationIssue{Loc: []any{"body"}, Msg: "Field required", Type: "missing"}},
		{" null ", ValidationIssue{Loc: []any{"body"}, Msg: "Field required", Type: "missing"}},
		{"[1]", ValidationIssue{Loc: []any{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Type: "model_attributes_type"}},
		{`"text"`, ValidationIssue{Loc: []any{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Type: "model_attributes_type"}},
		{`{"finetune_id": }`, ValidationIssue{Loc: []any{"body", 16}, Msg: "JSON decode error", Type: "json_invalid"}},
		{`{"finetune_id":`, ValidationIssue{Loc: []any{"body", 15}, Msg: "JSON decode error", Type: "json_invalid"}},
		{"{}\u00a0", ValidationIssue{Loc: []any{"body", 2}, Msg: "JSON decode error", Type: "json_invalid"}},
		{`{"finetune_id": "a"} {}`, ValidationIssue{Loc: []any{"body", 21}, Msg: "JSON decode error", Type: "json_invalid"}},
	}
	for _, c := range cases {
		got := e.Validate([]byte(c.body))
		if len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("Validate(%q) = %#v, want %#v", c.body, got, c.want)
		}
		if f := got[0].Field(); f != "" {
			t.Errorf("Validate(%q): whole-body issue names field %q", c.body, f)
		}
	}
}

func TestValidateOrderFollowsCatalog(t *testing.T) {
	e := mustLookup(t, "flux-pro-finetuned")
	body := `{"output_format":"bmp","width":100,"steps":99,"prompt":1,"unknown":true}`
	var got []string
	for _, is := range e.Validate([]byte(body)) {
		got = append(got, is.Field())
	}
	want := []string{"finetune_id", "steps", "prompt", "width", "output_format"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("issue order %v, want catalog order %v", got, want)
	}
}

func TestValidateQuery(t *testing.T) {
	cases := []struct {
		endpoint string
		query    string
		want     []ValidationIssue
	}{
		{"get_result", "id=abc", nil},
		{"get_result", "", []ValidationIssue{{Loc: []any{"query", "id"}, Msg: "Field required", Type: "missing"}}},
		{"get_result", "other=1", []ValidationIssue{{Loc: []any{"query", "id"}, Msg: "Field required", Type: "missing"}}},
		{"finetune_details", "finetune_id=org%2Flora", nil},
		{"my_finetunes", "", nil},
		{"credits", "anything=1", nil},
	}
	for _, c := range cases {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatalf("parse %q: %v", c.query, err)
		}
		if got := mustLookup(t, c.endpoint).ValidateQuery(q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s ValidateQuery(%q) = %#v, want %#v", c.endpoint, c.query, got, c.want)
		}
	}
}

func TestUnknownFields(t *testing.T) {
	e := mustLookup(t, "flux-pro-finetuned")
	body := map[string]any{"prompt": "x", "num_images": 4, "guidance_scale": 3, "raw": true, "steps": 30}
	want := []string{"guidance_scale", "num_images", "raw"}
	if got := e.UnknownFields(body); !reflect.DeepEqual(got, want) {
		t.Errorf("UnknownFields = %v, want %v", got, want)
	}
	if got := e.UnknownFields(defaultBody(t, e)); len(got) != 0 {
		t.Errorf("UnknownFields(defaults) = %v, want none", got)
	}
}

func TestIssueField(t *testing.T) {
	cases := []struct {
		loc  []any
		want string
	}{
		{[]any{"body", "steps"}, "steps"},
		{[]any{"query", "id"}, "id"},
		{[]any{"body", 0}, ""},
		{[]any{"body"}, ""},
		{nil, ""},
		{[]any{"body", "image_prompt", 0}, "image_prompt"},
		{[]any{"seed"}, "seed"},
		{[]any{"body", float64(3), "width"}, "width"},
	}
	for _, c := range cases {
		if got := (ValidationIssue{Loc: c.loc}).Field(); got != c.want {
			t.Errorf("Field() of loc %v = %q, want %q", c.loc, got, c.want)
		}
	}
}

func TestValidationBody(t *testing.T) {
	if got := string(ValidationBody(nil)); got != `{"detail":[]}` {
		t.Errorf("ValidationBody(nil) = %s", got)
	}
	issues := mustLookup(t, "flux-pro-finetuned").Validate([]byte(`{"steps":0}`))
	body := ValidationBody(issues)
	want := `{"detail":[{"loc":["body","finetune_id"],"msg":"Field required","type":"missing"},` +
		`{"loc":["body","steps"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"}]}`
	if string(body) != want {
		t.Errorf("ValidationBody = %s\nwant %s", body, want)
	}
	if back := DecodeError(422, body); !reflect.DeepEqual(back.Issues, issues) {
		t.Errorf("round trip: %#v, want %#v", back.Issues, issues)
	}
	odd := ValidationBody([]ValidationIssue{{Loc: []any{make(chan int)}, Msg: "m", Type: "t"}})
	var decoded struct{ Detail string }
	if err := json.Unmarshal(odd, &decoded); err != nil || !strings.Contains(decoded.Detail, "unencodable") {
		t.Errorf("unencodable issues gave %s (%v)", odd, err)
	}
}

// ValidateBody gives Validate's verdict on every base64 spelling the stream
// decoder accepts or refuses, and hands back the bytes the sender encoded.
func TestValidateBodyMatchesValidate(t *testing.T) {
	e := mustLookup(t, "finetune")
	zipData := []byte("PK\x03\x04 a training set \xff\x00")
	padded := base64.StdEncoding.EncodeToString(zipData)
	cases := []struct {
		name, fileData string
		want           []byte // nil: the body is refused
	}{
		{"padded", padded, zipData},
		{"unpadded", base64.RawStdEncoding.EncodeToString(zipData), zipData},
		{"with line breaks", padded[:8] + "\r\n" + padded[8:16] + "\n" + padded[16:], zipData},
		// The stream decoder drops a stray final quantum rather than refuse it.
		{"stray padding", base64.RawStdEncoding.EncodeToString(zipData[:6]) + "=", zipData[:6]},
		{"not a ZIP", base64.StdEncoding.EncodeToString([]byte("GIF89a")), nil},
		{"data URL", "data:application/zip;base64," + padded, nil},
		{"bad character", padded[:4] + "*" + padded[5:], nil},
	}
	for _, c := range cases {
		fields := defaultBody(t, e)
		fields["file_data"] = c.fileData
		fields["unknown"] = 7
		body := marshal(t, fields)
		want := e.Validate(body)
		got, issues := e.ValidateBody(body)
		if !reflect.DeepEqual(issues, want) {
			t.Errorf("%s: ValidateBody issues %v, Validate %v", c.name, issues, want)
			continue
		}
		if c.want == nil {
			if len(issues) != 1 || issues[0].Field() != "file_data" || got.Fields != nil || got.Decoded != nil {
				t.Errorf("%s: want one file_data issue and no body, got %v %+v", c.name, issues, got)
			}
			continue
		}
		if len(issues) != 0 || !bytes.Equal(got.Decoded["file_data"], c.want) {
			t.Errorf("%s: issues %v, decoded %q, want %q", c.name, issues, got.Decoded["file_data"], c.want)
		}
		if got.Fields["unknown"] != json.Number("7") || got.Fields["file_data"] != c.fileData {
			t.Errorf("%s: fields %v", c.name, got.Fields)
		}
	}
}
