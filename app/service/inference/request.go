// Package inference turns the generate form into a request for one finetuned
// endpoint, submits it, polls it to a terminal status, fetches the image at once
// (BFL's link dies within minutes) and keeps it in the gallery with the whole
// request. Batches go through the same path, never more than MaxInFlight tasks
// at a time.
package inference

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/models"
)

// Image is an uploaded or painted input image.
type Image struct {
	Data      []byte
	MediaType string
}

// Seed is the seed control: random each time unless locked.
type Seed struct {
	Locked bool
	Value  int64
}

// maxSeed keeps random seeds exact in JavaScript numbers and in any JSON reader.
const maxSeed = 1 << 32

// Pick returns the seed for the next request.
func (s Seed) Pick() int64 {
	if s.Locked {
		return s.Value
	}
	return rand.Int64N(maxSeed)
}

// Form is the generate form as the user filled it.
type Form struct {
	Endpoint string
	Model    models.Model
	Values   map[string]string // raw input values by field name
	Images   map[string]Image  // base64-image fields (image_prompt, image, mask, control_image)
	Seed     Seed
	Batch    string // groups the records of one batch
}

// Endpoint returns the form's catalog entry.
func (f Form) endpoint() (bfl.Endpoint, error) {
	ep, ok := bfl.Lookup(f.Endpoint)
	if !ok || ep.Kind != bfl.KindGenerate {
		return ep, &core.ValidationError{Fields: map[string]string{"endpoint": fmt.Sprintf("%q is not an image endpoint", f.Endpoint)}}
	}
	return ep, nil
}

// Body builds the JSON body for the form's endpoint with the given seed. It
// holds only the endpoint's own fields: empty inputs take the catalog default
// (so the record shows every parameter), integers with a step (width, height)
// are snapped to it and clamped into range, anything else out of range or not
// allowed is a ValidationError naming the field and the rule.
func (f Form) Body(seed int64) (map[string]any, error) {
	ep, err := f.endpoint()
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	bad := map[string]string{}
	for _, fd := range ep.Fields {
		v, msg := f.value(fd, seed)
		switch {
		case msg != "":
			bad[fd.Name] = msg
		case v != nil:
			body[fd.Name] = v
		}
	}
	if len(bad) > 0 {
		return nil, &core.ValidationError{Fields: bad}
	}
	// The catalog's own validation is the last word, the same rules the API applies.
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s body: %w", ep.Name, err)
	}
	if issues := ep.Validate(raw); len(issues) > 0 {
		for _, is := range issues {
			bad[cmpOr(is.Field(), "body")] = is.Msg
		}
		return nil, &core.ValidationError{Fields: bad}
	}
	return body, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// value returns the field's value (nil: leave it out) or a message saying what is wrong.
func (f Form) value(fd bfl.Field, seed int64) (any, string) {
	switch fd.Name {
	case "finetune_id":
		if f.Model.ID == "" {
			return nil, "choose a model"
		}
		return f.Model.ID, ""
	case "seed":
		return seed, ""
	}
	if fd.Format == bfl.FormatBase64Image {
		img, ok := f.Images[fd.Name]
		if !ok || len(img.Data) == 0 {
			if fd.Required {
				return nil, "is required: choose an image"
			}
			return nil, ""
		}
		return base64.StdEncoding.EncodeToString(img.Data), ""
	}
	raw := strings.TrimSpace(f.Values[fd.Name])
	if raw == "" {
		if fd.Required {
			return nil, "is required"
		}
		return fd.Default, ""
	}
	switch fd.Type {
	case bfl.Integer, bfl.Number:
		return number(fd, raw)
	case bfl.Boolean:
		switch strings.ToLower(raw) {
		case "true", "on", "1", "yes":
			return true, ""
		case "false", "off", "0", "no":
			return false, ""
		}
		return nil, "must be true or false"
	}
	if len(fd.Enum) > 0 && !enumHas(fd.Enum, raw) {
		return nil, fmt.Sprintf("must be one of %s", enumText(fd.Enum))
	}
	if fd.Name == "prompt" {
		return f.Values[fd.Name], "" // spacing inside a prompt is the user's
	}
	if fd.Format == bfl.FormatAspectRatio {
		w, h, err := bfl.ParseAspectRatio(raw)
		if err != nil {
			return nil, err.Error()
		}
		return fmt.Sprintf("%d:%d", w, h), ""
	}
	return raw, ""
}

func number(fd bfl.Field, raw string) (any, string) {
	x, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return nil, "must be a number"
	}
	if fd.MultipleOf > 0 {
		x = Snap(fd, x)
	}
	if fd.Type == bfl.Integer && x != math.Trunc(x) {
		return nil, "must be a whole number"
	}
	if len(fd.Enum) > 0 && !enumHas(fd.Enum, x) {
		return nil, fmt.Sprintf("must be one of %s", enumText(fd.Enum))
	}
	if fd.Min != nil && x < *fd.Min || fd.Max != nil && x > *fd.Max {
		return nil, fmt.Sprintf("must be between %s and %s", bound(fd.Min, "-∞"), bound(fd.Max, "∞"))
	}
	if fd.Type == bfl.Integer {
		return int64(x), ""
	}
	return x, ""
}

// Snap rounds x to the field's step and clamps it to the largest range of
// steps inside its bounds, so 1000 becomes 992 and 5000 becomes 1440 for width.
func Snap(fd bfl.Field, x float64) float64 {
	m := fd.MultipleOf
	if m <= 0 {
		return x
	}
	x = math.Round(x/m) * m
	if fd.Min != nil {
		x = math.Max(x, math.Ceil(*fd.Min/m)*m)
	}
	if fd.Max != nil {
		x = math.Min(x, math.Floor(*fd.Max/m)*m)
	}
	return x
}

func bound(p *float64, none string) string {
	if p == nil {
		return none
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

func enumHas(enum []any, v any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == fmt.Sprint(v) {
			return true
		}
	}
	return false
}

func enumText(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		parts[i] = fmt.Sprint(e)
	}
	return strings.Join(parts, ", ")
}

// HasTriggerWord reports whether the prompt contains the word as a whole word, ignoring case.
func HasTriggerWord(prompt, word string) bool {
	word = strings.TrimSpace(word)
	if word == "" {
		return true
	}
	re := regexp.MustCompile(`(?i)(^|[^\pL\pN_])` + regexp.QuoteMeta(word) + `($|[^\pL\pN_])`)
	return re.MatchString(prompt)
}

// InsertTriggerWord puts the word at the start of the prompt unless it is there.
func InsertTriggerWord(prompt, word string) string {
	word = strings.TrimSpace(word)
	if HasTriggerWord(prompt, word) {
		return prompt
	}
	if strings.TrimSpace(prompt) == "" {
		return word
	}
	return word + " " + strings.TrimLeft(prompt, " ")
}

// FormValues turns a stored request back into form values ("use these settings").
func FormValues(params map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		switch x := v.(type) {
		case nil:
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case int64:
			out[k] = strconv.FormatInt(x, 10)
		case bool:
			out[k] = strconv.FormatBool(x)
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}
