package bfl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeError(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		body      string
		detail    string
		issues    []ValidationIssue
		field     string
		errSubstr []string
	}{
		{
			name: "422 list", status: 422,
			body: `{"detail":[{"loc":["body","steps"],"msg":"Input should be less than or equal to 50","type":"less_than_equal","input":99,"ctx":{"le":50}},` +
				`{"loc":["body","width"],"msg":"Input should be a multiple of 32","type":"multiple_of"}]}`,
			issues: []ValidationIssue{
				{Loc: []any{"body", "steps"}, Msg: "Input should be less than or equal to 50", Type: "less_than_equal"},
				{Loc: []any{"body", "width"}, Msg: "Input should be a multiple of 32", Type: "multiple_of"},
			},
			field:     "steps",
			errSubstr: []string{"422", "steps: Input should be less than or equal to 50", "width: Input should be a multiple of 32"},
		},
		{
			name: "string detail", status: 403, body: `{"detail": "Not authenticated - Invalid Authentication"}`,
			detail: "Not authenticated - Invalid Authentication", errSubstr: []string{"403", "Not authenticated"},
		},
		{name: "empty body", status: 500, body: "", errSubstr: []string{"500", "without an explanation"}},
		{name: "blank body", status: 502, body: " \n", errSubstr: []string{"502", "without an explanation"}},
		{
			name: "HTML body", status: 502,
			body:   "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1><hr>nginx</body></html>",
			detail: "HTML page: 502 Bad Gateway", errSubstr: []string{"502 Bad Gateway"},
		},
		{name: "HTML without title", status: 503, body: "<!DOCTYPE html><p>down</p>", detail: "HTML page instead of JSON"},
		{
			name: "nested loc ints", status: 422,
			body:   `{"detail":[{"loc":["body","items",2,"seed"],"msg":"Input should be a valid integer","type":"int_type"}]}`,
			issues: []ValidationIssue{{Loc: []any{"body", "items", 2, "seed"}, Msg: "Input should be a valid integer", Type: "int_type"}},
			field:  "items",
		},
		{
			name: "json_invalid loc", status: 422,
			body:   `{"detail":[{"type":"json_invalid","loc":["body",7],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`,
			issues: []ValidationIssue{{Loc: []any{"body", 7}, Msg: "JSON decode error", Type: "json_invalid"}},
			field:  "", errSubstr: []string{"JSON decode error"},
		},
		{
			name: "odd issue parts", status: 422, body: `{"detail":[{"msg":12,"type":null}]}`,
			issues: []ValidationIssue{{Loc: []any{}, Msg: "12", Type: ""}},
		},
		{name: "object detail", status: 400, body: `{"detail":{"reason":"bad"}}`, detail: `{"reason":"bad"}`},
		{name: "message key", status: 429, body: `{"message":"Too many active tasks"}`, detail: "Too many active tasks"},
		{name: "no known key", status: 500, body: `{"oops":true}`, detail: `{"oops":true}`},
		{name: "JSON array", status: 500, body: `[1,2]`, detail: `[1,2]`},
		{name: "plain text", status: 504, body: "upstream timed out\n", detail: "upstream timed out"},
		{name: "null", status: 500, body: `null`, detail: "null"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := DecodeError(c.status, []byte(c.body))
			if e.Status != c.status || e.Detail != c.detail || !reflect.DeepEqual(e.Issues, c.issues) {
				t.Errorf("DecodeError = %#v, want status %d detail %q issues %#v", e, c.status, c.detail, c.issues)
			}
			if got := e.Field(); got != c.field {
				t.Errorf("Field() = %q, want %q", got, c.field)
			}
			msg := e.Error()
			for _, s := range c.errSubstr {
				if !strings.Contains(msg, s) {
					t.Errorf("Error() = %q, want it to contain %q", msg, s)
				}
			}
		})
	}
}

func TestDecodeErrorClipsLongBodies(t *testing.T) {
	body := strings.Repeat("é", 1000) + "\xff"
	e := DecodeError(500, []byte(body))
	if len(e.Detail) > maxDetail+len("…") || !strings.HasSuffix(e.Detail, "…") {
		t.Errorf("detail not clipped: %d bytes", len(e.Detail))
	}
	if !strings.HasPrefix(e.Detail, "éé") || strings.ContainsRune(e.Detail, '\uFFFD') {
		t.Errorf("clipped detail broke a character: %q", e.Detail[:10])
	}
}

func TestErrorWorksWithErrorsAs(t *testing.T) {
	wrapped := fmt.Errorf("generate: %w", DecodeError(422, []byte(`{"detail":[{"loc":["body","guidance"],"msg":"m","type":"t"}]}`)))
	var be *Error
	if !errors.As(wrapped, &be) || be.Field() != "guidance" || be.Status != 422 {
		t.Fatalf("errors.As gave %#v", be)
	}
}
