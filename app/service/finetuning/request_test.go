package finetuning

import (
	"errors"
	"strings"
	"testing"

	"github.com/fluxforge/fluxforge/app/core"
)

func validForm() Form {
	f := NewForm()
	f[FieldComment] = "Portraits of Ada"
	return f
}

func fieldErrors(t *testing.T, err error) map[string]string {
	t.Helper()
	var ve *core.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *core.ValidationError", err)
	}
	return ve.Fields
}

func TestFieldsHoldOnlyCatalogFields(t *testing.T) {
	ep := TrainingEndpoint()
	f := validForm()
	// Everything the user could type, plus names the API does not define
	// (the original tool sent such fields).
	for k, v := range map[string]string{
		"trigger_word": "ADA", "iterations": "500", "learning_rate": "0.0002", "captioning": "false",
		"priority": "speed", "finetune_type": "lora", "lora_rank": "16",
		"webhook_url": "https://example.com/hook", "webhook_secret": "s",
		"num_images": "4", "guidance_scale": "7", "negative_prompt": "blurry", "file_data": "UEs=",
	} {
		f[k] = v
	}
	for _, webhooks := range []bool{false, true} {
		got, err := f.Fields(webhooks)
		if err != nil {
			t.Fatalf("webhooks=%v: %v", webhooks, err)
		}
		for name := range got {
			if _, ok := ep.Field(name); !ok {
				t.Errorf("request holds %q, not a field of the catalog", name)
			}
		}
		if _, ok := got[FieldFileData]; ok {
			t.Error("form fields must not carry file_data; the dataset does")
		}
		if _, ok := got["webhook_url"]; ok != webhooks {
			t.Errorf("webhooks=%v but webhook_url present=%v", webhooks, ok)
		}
		if got["iterations"] != int64(500) || got["learning_rate"] != 0.0002 || got["captioning"] != false || got["lora_rank"] != int64(16) {
			t.Errorf("converted values wrong: %#v", got)
		}
	}
	if problems := core.ValidateRequest(Endpoint, withFile(must(f.Fields(true)))); problems != nil {
		t.Errorf("catalog validation refuses the built request: %v", problems)
	}
}

func must(m map[string]any, err error) map[string]any {
	if err != nil {
		panic(err)
	}
	return m
}

func withFile(m map[string]any) map[string]any {
	m[FieldFileData] = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==" // an empty ZIP
	return m
}

func TestLearningRateOmittedUnlessSet(t *testing.T) {
	f := validForm()
	got, err := f.Fields(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[FieldLearningRate]; ok {
		t.Errorf("learning_rate sent without the user setting it: %v", got)
	}
	if len(got) != 2 {
		t.Errorf("an untouched form should send only the name and mode, got %v", got)
	}
	if p := f.LearningRatePlaceholder(); !strings.HasPrefix(p, "1e-05") || !strings.Contains(p, "full") {
		t.Errorf("full placeholder = %q", p)
	}
	f[FieldType] = "lora"
	if p := f.LearningRatePlaceholder(); !strings.HasPrefix(p, "0.0001") || !strings.Contains(p, "lora") {
		t.Errorf("lora placeholder = %q", p)
	}
	f[FieldLearningRate] = " 1e-4 "
	got, err = f.Fields(false)
	if err != nil || got[FieldLearningRate] != 1e-4 {
		t.Errorf("typed rate: %v %v", got, err)
	}
}

func TestFieldsReportEveryBadFieldByName(t *testing.T) {
	f := Form{FieldMode: "portrait", FieldIterations: "5000", FieldLearningRate: "fast", "lora_rank": "8",
		"captioning": "maybe", "priority": "quality"}
	bad := fieldErrors(t, mustErr(f.Fields(false)))
	want := map[string]string{
		FieldComment:      "Required",
		FieldMode:         "general",
		FieldIterations:   "1000",
		FieldLearningRate: "number",
		"lora_rank":       "16",
		"captioning":      "on or off",
	}
	for name, frag := range want {
		if !strings.Contains(bad[name], frag) {
			t.Errorf("%s: message %q lacks %q", name, bad[name], frag)
		}
	}
	if len(bad) != len(want) {
		t.Errorf("errors for %d fields, want %d: %v", len(bad), len(want), bad)
	}
	f2 := validForm()
	f2[FieldIterations] = "12.5"
	if msg := fieldErrors(t, mustErr(f2.Fields(false)))[FieldIterations]; !strings.Contains(msg, "whole number") {
		t.Errorf("12.5 iterations: %q", msg)
	}
}

func mustErr(_ map[string]any, err error) error { return err }

func TestFormFieldsShowEveryCatalogField(t *testing.T) {
	shown := map[string]bool{}
	for _, f := range FormFields(true) {
		shown[f.Name] = true
	}
	for _, f := range TrainingEndpoint().Fields {
		if f.Name != FieldFileData && !shown[f.Name] {
			t.Errorf("form lacks catalog field %s", f.Name)
		}
	}
	for _, f := range FormFields(false) {
		if strings.HasPrefix(f.Name, "webhook_") {
			t.Errorf("webhook field %s shown with the flag off", f.Name)
		}
	}
}

func TestPresetsAreValidAndKeepUserChoices(t *testing.T) {
	for _, mode := range []string{"general", "character", "style", "product"} {
		ps := Presets(mode)
		if len(ps) != 2 {
			t.Fatalf("%s: %d presets", mode, len(ps))
		}
		for _, p := range ps {
			f := validForm()
			f[FieldTrigger] = "ADA"
			f[FieldLearningRate] = "0.00005"
			applied := f.Apply(p)
			got, err := applied.Fields(false)
			if err != nil {
				t.Errorf("%s: %v", p.ID, err)
				continue
			}
			if got[FieldMode] != mode || got[FieldTrigger] != "ADA" || got[FieldComment] != "Portraits of Ada" || got[FieldLearningRate] != 0.00005 {
				t.Errorf("%s lost user values or mode: %v", p.ID, got)
			}
			if p.Why == "" || p.Name == "" {
				t.Errorf("%s has no explanation", p.ID)
			}
			if f[FieldMode] != "general" {
				t.Error("Apply modified the original form")
			}
		}
	}
	if Presets("unknown") != nil {
		t.Error("presets for an unknown mode")
	}
}

func TestTriggerAndTypeFallBackToCatalogDefaults(t *testing.T) {
	f := NewForm()
	if f.Trigger() != "TOK" || f.Type() != "full" {
		t.Errorf("defaults: trigger %q type %q", f.Trigger(), f.Type())
	}
	f[FieldTrigger] = " ADA "
	f[FieldType] = "lora"
	if f.Trigger() != "ADA" || f.Type() != "lora" {
		t.Errorf("set: trigger %q type %q", f.Trigger(), f.Type())
	}
}
