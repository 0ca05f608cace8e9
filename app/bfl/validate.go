package bfl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Validate checks a JSON request body against the endpoint's fields the way
// BFL's FastAPI server does, so a form can show the same complaints before
// spending money. Issues come in catalog field order, at most one per field;
// unknown fields are ignored, as BFL ignores them (see UnknownFields).
func (e Endpoint) Validate(body []byte) []ValidationIssue {
	_, issues := e.validate(body, nil)
	return issues
}

// Body is a request body as ValidateBody read it.
type Body struct {
	// Fields holds every top-level key, known or not, as encoding/json
	// decodes it into any, with numbers as json.Number.
	Fields map[string]any
	// Decoded holds the bytes of each base64 field (an image or a ZIP) the
	// body carries.
	Decoded map[string][]byte
}

// ValidateBody checks body exactly as Validate does and, when there are no
// issues, also returns it decoded, for a server that goes on to use it: the
// JSON is parsed and each base64 field decoded once, not once to validate
// and again to read. It holds the decoded files in memory, which Validate
// avoids, so a form that only wants the verdict should call Validate.
func (e Endpoint) ValidateBody(body []byte) (Body, []ValidationIssue) {
	decoded := map[string][]byte{}
	fields, issues := e.validate(body, decoded)
	if len(issues) > 0 {
		return Body{}, issues
	}
	return Body{Fields: fields, Decoded: decoded}, nil
}

// validate is Validate that also returns the decoded object. A non-nil
// decoded map receives each base64 field's bytes; with nil they are only
// streamed through.
func (e Endpoint) validate(body []byte, decoded map[string][]byte) (map[string]any, []ValidationIssue) {
	obj, ok := e.decodeObject(body)
	if !ok {
		var issue ValidationIssue
		if obj, issue, ok = decodeAny(body); !ok {
			return nil, []ValidationIssue{issue}
		}
	}
	var issues []ValidationIssue
	for _, f := range e.Fields {
		raw, present := obj[f.Name]
		if issue, bad := f.check(raw, present, decoded); bad {
			issue.Loc = []any{"body", f.Name}
			issues = append(issues, issue)
		}
	}
	return obj, issues
}

// decodeObject decodes a body that is one JSON object, without copying its
// base64 fields (a dataset is tens of megabytes of them) through
// encoding/json's unquoting: a string with no escapes and valid UTF-8 reads
// the same as its bytes. Any other body, or any doubt, reports false and
// goes to decodeAny, which gives the exact error; the results agree (see
// FuzzValidate).
func (e Endpoint) decodeObject(body []byte) (map[string]any, bool) {
	if trimmed := bytes.TrimLeft(body, jsonSpace); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false
	}
	// Unmarshal, not a Decoder: it reads body where it lies rather than
	// copying it into a growing buffer, and it refuses trailing data.
	var raws map[string]json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, false
	}
	obj := make(map[string]any, len(raws))
	for k, raw := range raws {
		if f, ok := e.Field(k); ok && (f.Format == FormatBase64Image || f.Format == FormatBase64ZIP) {
			if s, ok := plainString(raw); ok {
				obj[k] = s
				continue
			}
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, false
		}
		obj[k] = v
	}
	return obj, true
}

// plainString is the value of a JSON string literal that unquoting would
// leave as it is.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

// decodeAny decodes any body and, where it is not a JSON object, gives the
// one issue FastAPI reports for it.
func decodeAny(body []byte) (map[string]any, ValidationIssue, bool) {
	if len(bytes.Trim(body, jsonSpace)) == 0 {
		return nil, bodyMissing(), false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonInvalid(body, err), false
	}
	end := int(dec.InputOffset())
	if rest := bytes.TrimLeft(body[end:], jsonSpace); len(rest) != 0 {
		return nil, jsonInvalidAt(len(body) - len(rest)), false
	}
	if v == nil {
		// FastAPI reads a JSON null body as no body at all.
		return nil, bodyMissing(), false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, ValidationIssue{Loc: []any{"body"},
			Msg:  "Input should be a valid dictionary or object to extract fields from",
			Type: "model_attributes_type"}, false
	}
	return obj, ValidationIssue{}, true
}

// jsonSpace is the whitespace JSON allows between tokens.
const jsonSpace = " \t\r\n"

func bodyMissing() ValidationIssue {
	return ValidationIssue{Loc: []any{"body"}, Msg: "Field required", Type: "missing"}
}

// jsonInvalid is FastAPI's answer to a body that is not JSON: the location
// holds the index of the offending byte, as Python's decoder reports it.
func jsonInvalid(body []byte, err error) ValidationIssue {
	var syn *json.SyntaxError
	if errors.As(err, &syn) && syn.Offset > 0 {
		// Go counts the bytes read, the bad one included.
		return jsonInvalidAt(int(syn.Offset) - 1)
	}
	return jsonInvalidAt(len(body))
}

func jsonInvalidAt(pos int) ValidationIssue {
	return ValidationIssue{Loc: []any{"body", pos}, Msg: "JSON decode error", Type: "json_invalid"}
}

// ValidateQuery checks a GET endpoint's query parameters. Query values are
// strings, converted as FastAPI converts them (e.g. "3" is a valid integer).
func (e Endpoint) ValidateQuery(q url.Values) []ValidationIssue {
	var issues []ValidationIssue
	for _, f := range e.Fields {
		vals, present := q[f.Name]
		var raw any
		if present && len(vals) > 0 {
			raw = vals[0]
		} else {
			present = false
		}
		if issue, bad := f.check(raw, present, nil); bad {
			issue.Loc = []any{"query", f.Name}
			issues = append(issues, issue)
		}
	}
	return issues
}

// UnknownFields lists, sorted, the keys of body that the endpoint does not
// define. BFL silently ignores them, which hides typos and made-up parameters.
func (e Endpoint) UnknownFields(body map[string]any) []string {
	var out []string
	for k := range body {
		if _, ok := e.Field(k); !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// check validates one value; raw is a JSON-decoded value (numbers as
// json.Number or float64) or a query string. The returned issue has no Loc.
// A valid base64 field's bytes go into decoded unless it is nil.
func (f Field) check(raw any, present bool, decoded map[string][]byte) (ValidationIssue, bool) {
	if !present {
		if f.Required {
			return ValidationIssue{Msg: "Field required", Type: "missing"}, true
		}
		return ValidationIssue{}, false
	}
	if raw == nil && f.Nullable {
		return ValidationIssue{}, false
	}
	switch f.Type {
	case Integer:
		return f.checkNumber(raw, true)
	case Number:
		return f.checkNumber(raw, false)
	case Boolean:
		return checkBool(raw)
	}
	return f.checkString(raw, decoded)
}

func (f Field) checkNumber(raw any, integer bool) (ValidationIssue, bool) {
	kind, what := "float", "number"
	if integer {
		kind, what = "int", "integer"
	}
	v, ok := NumberValue(raw)
	if !ok {
		if _, isString := raw.(string); isString {
			return ValidationIssue{Msg: "Input should be a valid " + what + ", unable to parse string as " + article(what),
				Type: kind + "_parsing"}, true
		}
		return ValidationIssue{Msg: "Input should be a valid " + what, Type: kind + "_type"}, true
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ValidationIssue{Msg: "Input should be a finite number", Type: "finite_number"}, true
	}
	if integer && v != math.Trunc(v) {
		return ValidationIssue{Msg: "Input should be a valid integer, got a number with a fractional part",
			Type: "int_from_float"}, true
	}
	if len(f.Enum) > 0 {
		for _, allowed := range f.Enum {
			if a, ok := allowed.(float64); ok && a == v {
				return ValidationIssue{}, false
			}
		}
		return ValidationIssue{Msg: "Input should be " + enumList(f.Enum), Type: "enum"}, true
	}
	// pydantic's order: multiple_of, then the upper bound, then the lower.
	if f.MultipleOf != 0 && math.Mod(v, f.MultipleOf) != 0 {
		return ValidationIssue{Msg: "Input should be a multiple of " + formatNumber(f.MultipleOf),
			Type: "multiple_of"}, true
	}
	if f.Max != nil && v > *f.Max {
		return ValidationIssue{Msg: "Input should be less than or equal to " + formatNumber(*f.Max),
			Type: "less_than_equal"}, true
	}
	if f.Min != nil && v < *f.Min {
		return ValidationIssue{Msg: "Input should be greater than or equal to " + formatNumber(*f.Min),
			Type: "greater_than_equal"}, true
	}
	return ValidationIssue{}, false
}

func article(what string) string {
	if what == "integer" {
		return "an integer"
	}
	return "a number"
}

// NumberValue is the number a lax pydantic integer or number field reads from
// raw, a JSON-decoded value (numbers as json.Number or float64) or a query
// string: the one reading of a number that validation judges and a server
// then uses. ok is false for anything that is no number at all. A JSON
// number too large for float64 reads as an infinity, which validation then
// refuses as not finite.
func NumberValue(raw any) (float64, bool) {
	switch x := raw.(type) {
	case json.Number:
		v, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false
		}
		return v, true
	case float64:
		return x, true
	case string:
		return parseNumericString(x)
	}
	return 0, false
}

// parseNumericString accepts what a lax pydantic number field accepts from a
// string: a decimal number, surrounding spaces allowed. Go-only spellings such
// as "0x10", "Inf" or "1_000" are refused.
func parseNumericString(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.Trim(s, "+-0123456789.eE") != "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// BoolValue is the boolean a lax pydantic field reads from raw, a
// JSON-decoded value or a query string: true or false, the JSON numbers 0
// and 1, or a word such as "yes" or "off". ok is false for anything else,
// which validation refuses.
func BoolValue(raw any) (value, ok bool) {
	switch x := raw.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "yes", "on", "t", "y":
			return true, true
		case "false", "0", "no", "off", "f", "n":
			return false, true
		}
	case json.Number:
		switch x {
		case "1":
			return true, true
		case "0":
			return false, true
		}
	}
	return false, false
}

func checkBool(raw any) (ValidationIssue, bool) {
	if _, ok := BoolValue(raw); ok {
		return ValidationIssue{}, false
	}
	switch raw.(type) {
	case string, json.Number:
		return ValidationIssue{Msg: "Input should be a valid boolean, unable to interpret input", Type: "bool_parsing"}, true
	}
	return ValidationIssue{Msg: "Input should be a valid boolean", Type: "bool_type"}, true
}

func (f Field) checkString(raw any, decoded map[string][]byte) (ValidationIssue, bool) {
	s, ok := raw.(string)
	if !ok {
		return ValidationIssue{Msg: "Input should be a valid string", Type: "string_type"}, true
	}
	if len(f.Enum) > 0 {
		for _, allowed := range f.Enum {
			if a, ok := allowed.(string); ok && a == s {
				return ValidationIssue{}, false
			}
		}
		return ValidationIssue{Msg: "Input should be " + enumList(f.Enum), Type: "enum"}, true
	}
	// pydantic counts characters, not bytes. Counting is skipped for fields
	// without bounds: a ZIP field's string is tens of megabytes.
	if f.MinLength > 0 || f.MaxLength > 0 {
		n := utf8.RuneCountInString(s)
		if f.MinLength > 0 && n < f.MinLength {
			return ValidationIssue{Msg: "String should have at least " + plural(f.MinLength, "character"),
				Type: "string_too_short"}, true
		}
		if f.MaxLength > 0 && n > f.MaxLength {
			return ValidationIssue{Msg: "String should have at most " + plural(f.MaxLength, "character"),
				Type: "string_too_long"}, true
		}
	}
	switch f.Format {
	case FormatURI:
		return checkURL(s)
	case FormatAspectRatio:
		if _, _, err := ParseAspectRatio(s); err != nil {
			return ValidationIssue{Msg: "Value error, " + err.Error(), Type: "value_error"}, true
		}
	case FormatBase64Image:
		return f.checkBase64(s, "an image (PNG, JPEG or WebP)", isImage, decoded)
	case FormatBase64ZIP:
		return f.checkBase64(s, "a ZIP archive", isZIP, decoded)
	}
	return ValidationIssue{}, false
}

// checkURL mirrors pydantic's HttpUrl, which BFL's "uri" fields are.
func checkURL(s string) (ValidationIssue, bool) {
	parsing := func(reason string) (ValidationIssue, bool) {
		return ValidationIssue{Msg: "Input should be a valid URL, " + reason, Type: "url_parsing"}, true
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return parsing(err.Error())
	case u.Scheme == "":
		return parsing("relative URL without a base")
	case u.Scheme != "http" && u.Scheme != "https":
		return ValidationIssue{Msg: "URL scheme should be 'http' or 'https'", Type: "url_scheme"}, true
	case u.Host == "":
		return parsing("empty host")
	}
	return ValidationIssue{}, false
}

// checkBase64 decodes s and checks the decoded data's leading bytes. With a
// nil decoded map it decodes s as a stream and never holds the data (a ZIP
// body can be tens of megabytes, and a form only wants the verdict);
// otherwise it keeps the data there under the field's name. Either way the
// verdict is the stream decoder's, which forgives a truncated final quantum.
func (f Field) checkBase64(s, what string, signature func([]byte) bool, decoded map[string][]byte) (ValidationIssue, bool) {
	enc := base64.RawStdEncoding
	if strings.HasSuffix(s, "=") {
		enc = base64.StdEncoding
	}
	var data []byte
	var err error
	if decoded != nil {
		// Decoding in one call is much faster than the stream, and where it
		// succeeds the stream gives the same bytes.
		data, err = enc.DecodeString(s)
	}
	if decoded == nil || err != nil {
		data, err = decodeStream(enc, s, decoded != nil)
	}
	if err != nil {
		reason := err.Error()
		if strings.HasPrefix(s, "data:") {
			// A browser's data: URL is the likeliest mistake; say how to fix it.
			reason = "send the bare base64 without the data: URL prefix"
		}
		return ValidationIssue{Msg: "Base64 decoding error: " + reason, Type: "base64_decode"}, true
	}
	if !signature(data[:min(len(data), signatureLen)]) {
		return ValidationIssue{Msg: "Value error, the decoded data should be " + what, Type: "value_error"}, true
	}
	if decoded != nil {
		decoded[f.Name] = data
	}
	return ValidationIssue{}, false
}

// signatureLen is how many leading bytes identify a file format here.
const signatureLen = 12

// decodeStream decodes s through base64's stream decoder. It returns the
// data only when keep is set; otherwise just the signature bytes.
func decodeStream(enc *base64.Encoding, s string, keep bool) ([]byte, error) {
	dec := base64.NewDecoder(enc, strings.NewReader(s))
	head := make([]byte, signatureLen)
	n, err := io.ReadFull(dec, head)
	var rest bytes.Buffer
	if err == nil {
		var sink io.Writer = io.Discard
		if keep {
			sink = &rest
		}
		_, err = io.Copy(sink, dec)
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return append(head[:n], rest.Bytes()...), nil
}

func isImage(b []byte) bool {
	return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) ||
		bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) ||
		(len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP")
}

func isZIP(b []byte) bool { return bytes.HasPrefix(b, []byte("PK")) }

// enumList spells allowed values as pydantic does: 'a', 'b' or 'c'; numbers unquoted.
func enumList(values []any) string {
	parts := make([]string, len(values))
	for i, v := range values {
		switch x := v.(type) {
		case string:
			parts[i] = "'" + x + "'"
		case float64:
			parts[i] = formatNumber(x)
		default:
			parts[i] = fmt.Sprint(x)
		}
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
