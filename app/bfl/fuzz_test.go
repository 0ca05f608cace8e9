package bfl

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzValidate(f *testing.F) {
	// The issue types that concern the body rather than a field.
	wholeBody := map[string]bool{"missing": true, "model_attributes_type": true, "json_invalid": true}
	catalog := Catalog()
	for i, e := range catalog {
		if e.Method != "POST" {
			continue
		}
		body := marshal(f, defaultBody(f, e))
		if issues := e.Validate(body); len(issues) != 0 {
			f.Fatalf("%s: the default body must be valid, got %v", e.Name, issues)
		}
		f.Add(uint8(i), body)
	}
	for _, seed := range []string{"", "null", "[]", "{", `{"steps":3.5,"width":"x","seed":null}`,
		`{"aspect_ratio":"22:9","image_prompt":"iVBORw0KGgo="}`, `{"file_data":"UEsDBA==","mode":7}`,
		`{"webhook_url":"http://[::1"}`, `{"a":1} x`, `{"guidance":1e400}`,
		`{"file_data":"UEsD\/BA=="}`, "{\"image_prompt\":\"iVBO\xffRw0K\"}", `{"file_data":"a","file_data":"UEsDBA=="}`,
		`{"file_data":{"nested":["UEsDBA=="]},"image_prompt":7}`, ` {"file_data":"UEsDBA==" } `} {
		f.Add(uint8(1), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := catalog[int(which)%len(catalog)]
		issues := e.Validate(body)
		// The quick decoding of an object must read it exactly as the
		// general one does.
		if quick, ok := e.decodeObject(body); ok {
			general, issue, ok := decodeAny(body)
			if !ok || !reflect.DeepEqual(quick, general) {
				t.Fatalf("decodeObject gave %#v; decodeAny %#v (%v)", quick, general, issue)
			}
		}
		if _, again := e.ValidateBody(body); !reflect.DeepEqual(again, issues) {
			t.Fatalf("ValidateBody gave %v, Validate %v", again, issues)
		}
		seen := map[string]bool{}
		last := -1
		for _, is := range issues {
			if len(is.Loc) == 0 || is.Loc[0] != "body" || is.Msg == "" || is.Type == "" {
				t.Fatalf("malformed issue %#v", is)
			}
			name := is.Field()
			if name == "" {
				if !wholeBody[is.Type] || len(issues) != 1 {
					t.Fatalf("issue %#v names no field and is not a lone whole-body issue", is)
				}
				continue
			}
			idx := fieldIndex(e, name)
			if idx < 0 {
				t.Fatalf("issue names %q, not a field of %s", name, e.Name)
			}
			if seen[name] || idx < last {
				t.Fatalf("issues out of catalog order or repeated: %v", issues)
			}
			seen[name], last = true, idx
		}
		// What the simulator sends must decode back to the same issues.
		if back := DecodeError(422, ValidationBody(issues)); len(back.Issues) != len(issues) {
			t.Fatalf("round trip lost issues: %v -> %v", issues, back.Issues)
		}
		// A body that is a JSON object with every field valid has no issues:
		// validation must depend only on the catalog's fields.
		var obj map[string]any
		if len(issues) == 0 && json.Unmarshal(body, &obj) == nil && obj != nil {
			for _, unknown := range e.UnknownFields(obj) {
				delete(obj, unknown)
			}
			if again := e.Validate(marshal(t, obj)); len(again) != 0 {
				t.Fatalf("removing unknown fields made a valid body invalid: %v", again)
			}
		}
	})
}

func fieldIndex(e Endpoint, name string) int {
	for i, f := range e.Fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

func FuzzDecodeError(f *testing.F) {
	for _, seed := range []string{"", "<html><title>x</title>", `{"detail":"x"}`, `{"detail":[{"loc":["body",1]}]}`,
		`{"detail":[null,{"loc":[[]],"msg":{}}]}`, "\xff\xfe", `{"message":5}`} {
		f.Add(422, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := DecodeError(status, body)
		if e == nil || e.Status != status || e.Error() == "" {
			t.Fatalf("DecodeError(%d, %q) = %#v", status, body, e)
		}
		if !utf8.ValidString(e.Detail) || !strings.Contains(e.Error(), strconv.Itoa(status)) {
			t.Fatalf("unreadable error %q / %q", e.Detail, e.Error())
		}
		if f := e.Field(); f != "" && !slices.ContainsFunc(e.Issues, func(is ValidationIssue) bool { return slices.Contains(is.Loc, any(f)) }) {
			t.Fatalf("Field() = %q appears in no issue's loc: %#v", f, e.Issues)
		}
	})
}
