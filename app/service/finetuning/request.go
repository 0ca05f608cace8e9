package finetuning

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// Endpoint is the catalog name of the training call.
const Endpoint = "finetune"

// Field names the form treats specially.
const (
	FieldFileData     = "file_data"
	FieldComment      = "finetune_comment"
	FieldTrigger      = "trigger_word"
	FieldMode         = "mode"
	FieldType         = "finetune_type"
	FieldLearningRate = "learning_rate"
	FieldIterations   = "iterations"
)

// Form is the training form as typed: one string per catalog field. An empty
// (or absent) value means "not set": the field is left out of the request and
// BFL applies its own default, which the form shows as a placeholder.
type Form map[string]string

// NewForm starts a form with the one choice BFL requires and has no default.
func NewForm() Form { return Form{FieldMode: "general"} }

// Clone copies the form.
func (f Form) Clone() Form {
	c := make(Form, len(f))
	for k, v := range f {
		c[k] = v
	}
	return c
}

// TrainingEndpoint returns the catalog's finetune endpoint.
func TrainingEndpoint() bfl.Endpoint {
	ep, ok := bfl.Lookup(Endpoint)
	if !ok {
		panic("bfl catalog lacks the finetune endpoint") // the catalog is code; its tests guard this
	}
	return ep
}

// FormFields lists the fields the form shows: every catalog field but the ZIP
// (the dataset panel builds it), and the webhook fields only when the
// webhooks feature is on.
func FormFields(webhooks bool) []bfl.Field {
	var out []bfl.Field
	for _, f := range TrainingEndpoint().Fields {
		if f.Name == FieldFileData || (!webhooks && isWebhook(f.Name)) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func isWebhook(name string) bool { return strings.HasPrefix(name, "webhook_") }

// Trigger is the trigger word the model will learn: the form's, or BFL's default.
func (f Form) Trigger() string { return f.orDefault(FieldTrigger) }

// Type is the finetune type that will be trained: the form's, or BFL's default.
func (f Form) Type() string { return f.orDefault(FieldType) }

// orDefault is the form's value for a string field, or the catalog default
// BFL applies when the field is left out.
func (f Form) orDefault(name string) string {
	if v := strings.TrimSpace(f[name]); v != "" {
		return v
	}
	def, _ := TrainingEndpoint().Field(name)
	s, _ := def.Default.(string)
	return s
}

// LearningRatePlaceholder is what the learning-rate input shows while unset:
// the rate BFL will really use for the chosen type, not the schema's null.
func (f Form) LearningRatePlaceholder() string {
	return strconv.FormatFloat(bfl.EffectiveLearningRate(f.Type()), 'g', -1, 64) + " (automatic for " + f.Type() + ")"
}

// Fields converts the form into the request's fields (without file_data),
// holding only catalog fields, and validates them with the catalog's rules.
// Unset optional fields are omitted, so BFL's defaults apply; in particular
// learning_rate is sent only when the user typed one.
func (f Form) Fields(webhooks bool) (map[string]any, error) {
	out := map[string]any{}
	bad := map[string]string{}
	for _, fd := range FormFields(webhooks) {
		raw := strings.TrimSpace(f[fd.Name])
		if raw == "" {
			if fd.Required {
				bad[fd.Name] = "Required: fill this in."
			}
			continue
		}
		v, err := convert(fd, raw)
		if err != nil {
			bad[fd.Name] = err.Error()
			continue
		}
		out[fd.Name] = v
	}
	ep := TrainingEndpoint()
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode form: %w", err)
	}
	for _, issue := range ep.Validate(body) {
		name := issue.Field()
		if name == FieldFileData || name == "" || bad[name] != "" {
			continue
		}
		if _, set := out[name]; !set {
			continue // a required field the loop above already reported
		}
		bad[name] = issue.Msg + "."
	}
	if len(bad) > 0 {
		return nil, &core.ValidationError{Fields: bad}
	}
	return out, nil
}

func convert(fd bfl.Field, raw string) (any, error) {
	switch fd.Type {
	case bfl.Integer:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("Enter a whole number, e.g. %s.", example(fd))
		}
		return n, nil
	case bfl.Number:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, errors.New("Enter a number such as 0.0001 or 1e-4.")
		}
		return x, nil
	case bfl.Boolean:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, errors.New("Choose on or off.")
		}
		return b, nil
	}
	return raw, nil
}

func example(fd bfl.Field) string {
	if d, ok := fd.Default.(float64); ok {
		return strconv.FormatFloat(d, 'f', -1, 64)
	}
	if fd.Min != nil {
		return strconv.FormatFloat(*fd.Min, 'f', -1, 64)
	}
	return "100"
}

// Preset is a named set of form values for one mode. Applying it changes only
// the fields it lists; the name, trigger word and webhook stay as typed.
type Preset struct {
	ID     string
	Name   string
	Mode   string
	Why    string // shown under the preset button
	Values Form
}

// Presets returns the presets offered for a mode: "balanced" is where most
// people should start, "quick" is a cheap trial run to check a dataset before
// paying for a long training.
//
//   - character: full finetune, 500 iterations, quality priority, captioning on;
//     a face needs more steps than a style to keep its identity.
//   - product: full finetune, 400 iterations, quality priority; shapes and
//     labels need fidelity more than speed.
//   - style: LoRA rank 32, 300 iterations; a look transfers well through a
//     light add-on, and LoRA's higher automatic rate learns it quickly.
//   - general: full finetune, 300 iterations (BFL's defaults), quality.
//   - quick (every mode): LoRA rank 16, 150 iterations, speed priority.
func Presets(mode string) []Preset {
	balanced := map[string]Preset{
		"character": {Why: "Faces need more steps to keep their identity.",
			Values: Form{FieldType: "full", FieldIterations: "500", "priority": "quality", "captioning": "true"}},
		"product": {Why: "Shapes and labels need fidelity more than speed.",
			Values: Form{FieldType: "full", FieldIterations: "400", "priority": "quality", "captioning": "true"}},
		"style": {Why: "A look transfers well through a light LoRA add-on.",
			Values: Form{FieldType: "lora", "lora_rank": "32", FieldIterations: "300", "priority": "quality", "captioning": "true"}},
		"general": {Why: "BFL's own defaults: a full finetune at quality priority.",
			Values: Form{FieldType: "full", FieldIterations: "300", "priority": "quality", "captioning": "true"}},
	}
	b, ok := balanced[mode]
	if !ok {
		return nil
	}
	b.ID, b.Name, b.Mode = mode+"-balanced", "Balanced", mode
	b.Values[FieldMode] = mode
	quick := Preset{ID: mode + "-quick", Name: "Quick trial", Mode: mode,
		Why:    "A cheap, fast run to check the dataset before a long training.",
		Values: Form{FieldMode: mode, FieldType: "lora", "lora_rank": "16", FieldIterations: "150", "priority": "speed"}}
	return []Preset{b, quick}
}

// Apply returns a copy of the form with the preset's values. A preset never
// sets the learning rate, so a rate the user typed survives and an unset one
// keeps following the type.
func (f Form) Apply(p Preset) Form {
	c := f.Clone()
	for k, v := range p.Values {
		c[k] = v
	}
	return c
}
