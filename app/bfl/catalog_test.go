package bfl

import (
	"strings"
	"testing"
)

func TestCatalogShape(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Catalog() {
		if seen[e.Name] {
			t.Errorf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Method != "GET" && e.Method != "POST" {
			t.Errorf("%s: method %q", e.Name, e.Method)
		}
		if e.Summary == "" {
			t.Errorf("%s: no summary", e.Name)
		}
		fields := map[string]bool{}
		for _, f := range e.Fields {
			if fields[f.Name] {
				t.Errorf("%s: field %s twice", e.Name, f.Name)
			}
			fields[f.Name] = true
			if f.Hint == "" || strings.Contains(f.Hint, "\n") {
				t.Errorf("%s.%s: hint must be one non-empty line, got %q", e.Name, f.Name, f.Hint)
			}
		}
	}
	for _, name := range []string{"finetune", "flux-pro-finetuned", "flux-pro-1.1-ultra-finetuned",
		"flux-pro-1.0-fill-finetuned", "flux-pro-1.0-depth-finetuned", "flux-pro-1.0-canny-finetuned",
		"get_result", "my_finetunes", "finetune_details", "delete_finetune", "credits"} {
		if !seen[name] {
			t.Errorf("catalog lacks %s", name)
		}
	}
}

// Every default must pass the field's own rules, or an untouched form fails.
func TestDefaultsPassTheirOwnField(t *testing.T) {
	for _, e := range Catalog() {
		for _, f := range e.Fields {
			if f.Default == nil {
				continue
			}
			if issue, bad := f.check(f.Default, true, nil); bad {
				t.Errorf("%s.%s default %v: %s", e.Name, f.Name, f.Default, issue.Msg)
			}
		}
	}
}

func TestLookup(t *testing.T) {
	e, ok := Lookup("credits")
	if !ok || e.Method != "GET" || e.Kind != KindAccount || e.Path() != "/v1/credits" {
		t.Errorf("Lookup(credits) = %+v, %v", e, ok)
	}
	if _, ok := Lookup("flux-pro-1.1"); ok {
		t.Error("Lookup found an endpoint outside the catalog")
	}
	del, _ := Lookup("delete_finetune")
	if f, ok := del.Field("finetune_id"); !ok || !f.Required {
		t.Errorf("delete_finetune finetune_id = %+v, %v", f, ok)
	}
}

func TestGenerators(t *testing.T) {
	names := func(es []Endpoint) string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return strings.Join(out, ",")
	}
	if got, want := names(Generators(false)), "flux-pro-1.1-ultra-finetuned,flux-pro-1.0-fill-finetuned"; got != want {
		t.Errorf("Generators(false) = %s, want %s", got, want)
	}
	want := "flux-pro-1.1-ultra-finetuned,flux-pro-1.0-fill-finetuned,flux-pro-finetuned," +
		"flux-pro-1.0-depth-finetuned,flux-pro-1.0-canny-finetuned"
	if got := names(Generators(true)); got != want {
		t.Errorf("Generators(true) = %s, want %s", got, want)
	}
}

// Callers (forms, the simulator) may edit what they get; that must not leak
// into anyone else's catalog.
func TestCatalogReturnsIndependentCopies(t *testing.T) {
	first := Catalog()
	first[0].Fields[0].Name = "changed"
	*first[1].Fields[1].Max = 99
	first[0].Fields[3].Enum[0] = "changed"
	second := Catalog()
	if second[0].Fields[0].Name == "changed" || *second[1].Fields[1].Max == 99 || second[0].Fields[3].Enum[0] == "changed" {
		t.Error("Catalog shares memory between calls")
	}
}
