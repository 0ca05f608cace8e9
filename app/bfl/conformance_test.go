package bfl

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// snapshot is one of BFL's OpenAPI documents, decoded loosely.
type snapshot struct {
	year string
	doc  map[string]any
}

// loadSnapshot finds ../shared/<name> next to the repository root (the
// directory holding go.mod), where CI keeps BFL's OpenAPI snapshots.
func loadSnapshot(t *testing.T, year string) snapshot {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory, so no ../shared snapshots")
		}
		dir = parent
	}
	path := filepath.Join(dir, "..", "shared", "bfl-openapi-"+year+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("BFL OpenAPI snapshot %s is required: %v", year, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return snapshot{year: year, doc: doc}
}

// spec is a field as a snapshot declares it, reduced to what the catalog holds.
type spec struct {
	Type                 string
	Format               string
	Required, Nullable   bool
	Min, Max             *float64
	ExclusiveMin         *float64
	ExclusiveMax         *float64
	MultipleOf           float64
	MinLength, MaxLength int
	Enum                 []any
	Default              any
}

// operation returns the snapshot's operation for an endpoint, or nil.
func (s snapshot) operation(e Endpoint) (method string, op map[string]any) {
	item, _ := s.doc["paths"].(map[string]any)[e.Path()].(map[string]any)
	for m, o := range item {
		if opMap, ok := o.(map[string]any); ok {
			return strings.ToUpper(m), opMap
		}
	}
	return "", nil
}

// fields lists the operation's request fields: body properties for a JSON
// body, query parameters otherwise.
func (s snapshot) fields(t *testing.T, op map[string]any) map[string]spec {
	t.Helper()
	out := map[string]spec{}
	if rb, ok := op["requestBody"].(map[string]any); ok {
		schema := rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
		obj := s.resolve(t, schema)
		required := map[string]bool{}
		for _, r := range obj["required"].([]any) {
			required[r.(string)] = true
		}
		for name, prop := range obj["properties"].(map[string]any) {
			sp := s.spec(t, prop.(map[string]any))
			sp.Required = required[name]
			out[name] = sp
		}
	}
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		pm := p.(map[string]any)
		if pm["in"] != "query" {
			continue
		}
		sp := s.spec(t, pm["schema"].(map[string]any))
		sp.Required, _ = pm["required"].(bool)
		out[pm["name"].(string)] = sp
	}
	return out
}

// resolve follows $ref and merges allOf, keeping sibling keys (such as a
// default next to a $ref) over the referenced ones.
func (s snapshot) resolve(t *testing.T, schema map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	if ref, ok := schema["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/components/schemas/")
		target, ok := s.doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
		if !found || !ok {
			t.Fatalf("%s: unresolvable $ref %q", s.year, ref)
		}
		for k, v := range s.resolve(t, target) {
			out[k] = v
		}
	}
	if all, ok := schema["allOf"].([]any); ok {
		for _, part := range all {
			for k, v := range s.resolve(t, part.(map[string]any)) {
				out[k] = v
			}
		}
	}
	for k, v := range schema {
		if k != "$ref" && k != "allOf" {
			out[k] = v
		}
	}
	return out
}

// spec reduces a property schema; anyOf with a null branch means nullable.
func (s snapshot) spec(t *testing.T, prop map[string]any) spec {
	t.Helper()
	merged := s.resolve(t, prop)
	if anyOf, ok := merged["anyOf"].([]any); ok {
		var nullable bool
		var branches []map[string]any
		for _, b := range anyOf {
			rb := s.resolve(t, b.(map[string]any))
			if rb["type"] == "null" {
				nullable = true
				continue
			}
			branches = append(branches, rb)
		}
		if len(branches) != 1 {
			t.Fatalf("%s: anyOf with %d non-null branches is beyond what the catalog can express: %v", s.year, len(branches), prop)
		}
		base := branches[0]
		for k, v := range merged {
			if k != "anyOf" {
				base[k] = v
			}
		}
		sp := specOf(base)
		sp.Nullable = nullable
		return sp
	}
	return specOf(merged)
}

func specOf(m map[string]any) spec {
	num := func(key string) *float64 {
		if v, ok := m[key].(float64); ok {
			return &v
		}
		return nil
	}
	length := func(key string) int {
		if v, ok := m[key].(float64); ok {
			return int(v)
		}
		return 0
	}
	sp := spec{
		Min: num("minimum"), Max: num("maximum"),
		ExclusiveMin: num("exclusiveMinimum"), ExclusiveMax: num("exclusiveMaximum"),
		MinLength: length("minLength"), MaxLength: length("maxLength"),
		Default: m["default"],
	}
	sp.Type, _ = m["type"].(string)
	sp.Format, _ = m["format"].(string)
	if v := num("multipleOf"); v != nil {
		sp.MultipleOf = *v
	}
	if e, ok := m["enum"].([]any); ok {
		sp.Enum = e
	}
	return sp
}

// catalogSpec is the catalog's field in the same shape; the catalog's own
// string refinements (base64, aspect ratio) are plain strings to OpenAPI.
func catalogSpec(f Field) spec {
	format := string(f.Format)
	if f.Format != FormatURI {
		format = ""
	}
	return spec{
		Type: string(f.Type), Format: format, Required: f.Required, Nullable: f.Nullable,
		Min: f.Min, Max: f.Max, MultipleOf: f.MultipleOf,
		MinLength: f.MinLength, MaxLength: f.MaxLength, Enum: f.Enum, Default: f.Default,
	}
}

// compareSpecs names each attribute where the catalog and a snapshot disagree.
func compareSpecs(cat, snap spec) map[string]string {
	diffs := map[string]string{}
	check := func(attr string, c, s any) {
		if !reflect.DeepEqual(c, s) {
			diffs[attr] = fmt.Sprintf("catalog %s, snapshot %s", show(c), show(s))
		}
	}
	check("type", cat.Type, snap.Type)
	check("format", cat.Format, snap.Format)
	check("required", cat.Required, snap.Required)
	check("nullable", cat.Nullable, snap.Nullable)
	check("minimum", cat.Min, snap.Min)
	check("maximum", cat.Max, snap.Max)
	// The catalog has no exclusive bounds; a snapshot adding one must be noticed.
	check("exclusiveMinimum", (*float64)(nil), snap.ExclusiveMin)
	check("exclusiveMaximum", (*float64)(nil), snap.ExclusiveMax)
	check("multipleOf", cat.MultipleOf, snap.MultipleOf)
	check("minLength", cat.MinLength, snap.MinLength)
	check("maxLength", cat.MaxLength, snap.MaxLength)
	check("enum", cat.Enum, snap.Enum)
	check("default", cat.Default, snap.Default)
	return diffs
}

func show(v any) string {
	if p, ok := v.(*float64); ok {
		if p == nil {
			return "none"
		}
		return fmt.Sprint(*p)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func TestCatalogMatchesSnapshots(t *testing.T) {
	// knownDrift lists every way the catalog may differ from the 2025
	// snapshot: the catalog follows 2026 where an endpoint is in both, and
	// these are the 2025 -> 2026 changes found so far. Anything else that
	// differs fails, and so does an entry that no longer differs, so the
	// list stays exact.
	knownDrift := map[string]string{
		// 2026 added webp to OutputFormat; both endpoints still in 2026 accept it.
		"2025 flux-pro-1.1-ultra-finetuned output_format enum": "webp added in 2026",
		"2025 flux-pro-1.0-fill-finetuned output_format enum":  "webp added in 2026",
	}
	snaps := []snapshot{loadSnapshot(t, "2025"), loadSnapshot(t, "2026")}
	seenDrift := map[string]bool{}
	for _, e := range Catalog() {
		inAny := false
		for _, s := range snaps {
			method, op := s.operation(e)
			if s.year == "2026" && e.Legacy != (op == nil) {
				t.Errorf("%s: Legacy is %v, want %v: legacy means absent from the 2026 snapshot", e.Name, e.Legacy, op == nil)
			}
			if op == nil {
				continue
			}
			inAny = true
			if method != e.Method {
				t.Errorf("%s %s: method %s, catalog says %s", s.year, e.Name, method, e.Method)
			}
			snapFields := s.fields(t, op)
			for _, f := range e.Fields {
				sf, ok := snapFields[f.Name]
				if !ok {
					t.Errorf("%s %s: catalog field %q is not in the snapshot", s.year, e.Name, f.Name)
					continue
				}
				for attr, d := range compareSpecs(catalogSpec(f), sf) {
					key := s.year + " " + e.Name + " " + f.Name + " " + attr
					if _, known := knownDrift[key]; known {
						seenDrift[key] = true
						continue
					}
					t.Errorf("%s: %s", key, d)
				}
			}
			for name := range snapFields {
				if _, ok := e.Field(name); !ok {
					t.Errorf("%s %s: snapshot field %q is missing from the catalog, so no form can show it", s.year, e.Name, name)
				}
			}
		}
		if !inAny {
			t.Errorf("%s: in neither snapshot", e.Name)
		}
	}
	for key := range knownDrift {
		if !seenDrift[key] {
			t.Errorf("knownDrift entry %q no longer differs: remove it", key)
		}
	}
}

// The status strings and response shapes are data too: the Go types must
// carry every property the snapshots' response schemas define.
func TestStatusesAndResponsesMatchSnapshots(t *testing.T) {
	types := map[string]any{
		"AsyncResponse":          AsyncResponse{},
		"AsyncWebhookResponse":   AsyncResponse{},
		"ResultResponse":         ResultResponse{},
		"MyFinetunesResponse":    MyFinetunes{},
		"FinetuneDetailResponse": FinetuneDetails{},
		"DeleteFinetuneResponse": DeleteFinetuneResponse{},
		"CreditsResponse":        Credits{},
	}
	for _, year := range []string{"2025", "2026"} {
		s := loadSnapshot(t, year)
		schemas := s.doc["components"].(map[string]any)["schemas"].(map[string]any)
		var statuses []any
		for _, st := range Statuses {
			statuses = append(statuses, string(st))
		}
		if got := schemas["StatusResponse"].(map[string]any)["enum"]; !reflect.DeepEqual(got, statuses) {
			t.Errorf("%s StatusResponse enum %v, Statuses %v", year, got, statuses)
		}
		for name, v := range types {
			schema, ok := schemas[name].(map[string]any)
			if !ok {
				if name != "CreditsResponse" || year != "2025" {
					t.Errorf("%s: schema %s missing", year, name)
				}
				continue
			}
			tags := jsonTags(reflect.TypeOf(v))
			var props []string
			for p := range schema["properties"].(map[string]any) {
				props = append(props, p)
			}
			sort.Strings(props)
			for _, p := range props {
				if !tags[p] {
					t.Errorf("%s %s: property %q has no field in %T", year, name, p, v)
				}
			}
		}
	}
}

func jsonTags(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}
