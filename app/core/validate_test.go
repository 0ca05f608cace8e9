package core

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateRequest(t *testing.T) {
	if v := ValidateRequest("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": "ft", "prompt": "a TOK cat", "aspect_ratio": "16:9"}); v != nil {
		t.Fatalf("valid request refused: %v", v)
	}
	v := ValidateRequest("flux-pro-1.1-ultra-finetuned", map[string]any{
		"finetune_id": "ft", "finetune_strength": 7.0, "aspect_ratio": "40:1", "colour": "red",
	})
	if v == nil {
		t.Fatal("invalid request accepted")
	}
	for _, field := range []string{"finetune_strength", "aspect_ratio", "colour"} {
		if v.Fields[field] == "" {
			t.Errorf("no message for %s: %v", field, v.Fields)
		}
	}
	if !strings.Contains(v.Error(), "finetune_strength") {
		t.Errorf("Error() = %q does not name the field", v.Error())
	}
	var err error = v
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Error("not matchable with errors.As")
	}
	if v := ValidateRequest("finetune_details", map[string]any{}); v == nil || v.Fields["finetune_id"] == "" {
		t.Errorf("GET endpoint missing its query field: %v", v)
	}
	if v := ValidateRequest("nope", nil); v == nil || v.Fields["endpoint"] == "" {
		t.Errorf("unknown endpoint: %v", v)
	}
}
