package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/models"
)

var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

var readyModel = models.Model{ID: "ft-1", Name: "Ada", TriggerWord: "ADA", Status: bfl.StatusReady}

// sample returns a raw form value inside the field's rules, off the step for
// stepped fields so snapping is exercised.
func sample(fd bfl.Field) string {
	switch {
	case fd.Format == bfl.FormatAspectRatio:
		return "16:9"
	case fd.Format == bfl.FormatURI:
		return "https://example.com/hook"
	case len(fd.Enum) > 0:
		return fmt.Sprint(fd.Enum[len(fd.Enum)-1])
	case fd.Type == bfl.Boolean:
		return "true"
	case fd.Type == bfl.Integer || fd.Type == bfl.Number:
		lo, hi := 0.0, 100.0
		if fd.Min != nil {
			lo = *fd.Min
		}
		if fd.Max != nil {
			hi = *fd.Max
		}
		mid := (lo + hi) / 2
		if fd.Type == bfl.Integer {
			mid = math.Round(mid)
			if fd.MultipleOf > 0 {
				mid += 3 // off the step
			}
		}
		return strconv.FormatFloat(mid, 'f', -1, 64)
	}
	return "ADA on a beach"
}

// foreign holds fields no finetuned endpoint defines, sent by the old tool.
var foreign = map[string]string{"num_images": "4", "negative_prompt": "blurry", "raw": "true", "guidance_scale": "7"}

func TestBodyHoldsOnlyTheEndpointsFieldsWithinRange(t *testing.T) {
	for _, ep := range bfl.Generators(true) {
		t.Run(ep.Name, func(t *testing.T) {
			values := map[string]string{}
			for k, v := range foreign {
				values[k] = v
			}
			// Fields of every other generator too: they must be dropped.
			for _, other := range bfl.Generators(true) {
				for _, fd := range other.Fields {
					values[fd.Name] = sample(fd)
				}
			}
			for _, fd := range ep.Fields {
				values[fd.Name] = sample(fd)
			}
			images := map[string]Image{}
			for _, name := range []string{"image_prompt", "image", "mask", "control_image"} {
				images[name] = Image{Data: pngBytes, MediaType: "image/png"}
			}
			f := Form{Endpoint: ep.Name, Model: readyModel, Values: values, Images: images}
			body, err := f.Body(99)
			if err != nil {
				t.Fatal(err)
			}
			for k := range body {
				if _, ok := ep.Field(k); !ok {
					t.Errorf("body has %q, which %s does not define", k, ep.Name)
				}
			}
			for _, fd := range ep.Fields {
				v, ok := body[fd.Name]
				if !ok {
					t.Errorf("%s missing: every parameter is sent and recorded", fd.Name)
					continue
				}
				if x, isNum := v.(float64); isNum || fd.Type == bfl.Integer {
					if !isNum {
						x = float64(v.(int64))
					}
					if fd.Min != nil && x < *fd.Min || fd.Max != nil && x > *fd.Max {
						t.Errorf("%s = %v out of range", fd.Name, x)
					}
					if fd.MultipleOf > 0 && math.Mod(x, fd.MultipleOf) != 0 {
						t.Errorf("%s = %v not a multiple of %v", fd.Name, x, fd.MultipleOf)
					}
				}
			}
			if body["finetune_id"] != "ft-1" || body["seed"] != int64(99) {
				t.Errorf("finetune_id/seed = %v/%v", body["finetune_id"], body["seed"])
			}
			raw, _ := json.Marshal(body)
			if issues := ep.Validate(raw); len(issues) > 0 {
				t.Errorf("the catalog refuses the body: %v", issues)
			}
		})
	}
}

func TestBodyFillsDefaults(t *testing.T) {
	body, err := Form{Endpoint: "flux-pro-1.1-ultra-finetuned", Model: readyModel, Values: map[string]string{"prompt": "ADA"}}.Body(1)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"aspect_ratio": "16:9", "finetune_strength": 1.2, "output_format": "jpeg", "safety_tolerance": 2.0, "prompt": "ADA"} {
		if body[k] != want {
			t.Errorf("%s = %#v, want %#v", k, body[k], want)
		}
	}
	if _, ok := body["image_prompt"]; ok {
		t.Error("no image prompt was chosen, none may be sent")
	}
}

func TestWidthAndHeightSnapAndClamp(t *testing.T) {
	ep, _ := bfl.Lookup("flux-pro-finetuned")
	width, _ := ep.Field("width")
	for in, want := range map[float64]float64{1000: 992, 1010: 1024, 1024: 1024, 5000: 1440, 100: 256, 257: 256, -3: 256} {
		if got := Snap(width, in); got != want {
			t.Errorf("Snap(%v) = %v, want %v", in, got, want)
		}
	}
	body, err := Form{Endpoint: ep.Name, Model: readyModel, Values: map[string]string{"width": "5000", "height": "700"}}.Body(1)
	if err != nil {
		t.Fatal(err)
	}
	if body["width"] != int64(1440) || body["height"] != int64(704) {
		t.Fatalf("width/height = %v/%v", body["width"], body["height"])
	}
}

func TestBodyRefusesBadValuesNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		endpoint, field, value, want string
	}{
		{"flux-pro-1.1-ultra-finetuned", "finetune_strength", "3", "between 0 and 2"},
		{"flux-pro-1.1-ultra-finetuned", "aspect_ratio", "32:9", "21:9"},
		{"flux-pro-1.1-ultra-finetuned", "aspect_ratio", "wide", ""},
		{"flux-pro-1.1-ultra-finetuned", "output_format", "gif", "jpeg, png, webp"},
		{"flux-pro-1.1-ultra-finetuned", "safety_tolerance", "2.5", "whole number"},
		{"flux-pro-1.1-ultra-finetuned", "prompt_upsampling", "maybe", "true or false"},
		{"flux-pro-finetuned", "steps", "abc", "a number"},
		{"flux-pro-1.0-fill-finetuned", "guidance", "101", "between 1.5 and 100"},
	} {
		_, err := Form{Endpoint: tc.endpoint, Model: readyModel, Values: map[string]string{tc.field: tc.value}, Images: map[string]Image{"image": {Data: pngBytes}}}.Body(1)
		var ve *core.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(ve.Fields[tc.field], tc.want) {
			t.Errorf("%s %s=%q: got %v, want a message on %s containing %q", tc.endpoint, tc.field, tc.value, err, tc.field, tc.want)
		}
	}
	for _, ar := range []string{"21:9", "9:21", "1:1", "4:5"} {
		if _, err := (Form{Endpoint: "flux-pro-1.1-ultra-finetuned", Model: readyModel, Values: map[string]string{"aspect_ratio": ar}}).Body(1); err != nil {
			t.Errorf("aspect ratio %s refused: %v", ar, err)
		}
	}
}

func TestBodyNeedsRequiredInputs(t *testing.T) {
	var ve *core.ValidationError
	_, err := Form{Endpoint: "flux-pro-1.0-fill-finetuned", Model: readyModel}.Body(1)
	if !errors.As(err, &ve) || !strings.Contains(ve.Fields["image"], "required") {
		t.Fatalf("fill without image: %v", err)
	}
	_, err = Form{Endpoint: "flux-pro-1.0-canny-finetuned", Images: map[string]Image{"control_image": {Data: pngBytes}}}.Body(1)
	if !errors.As(err, &ve) || ve.Fields["finetune_id"] == "" || !strings.Contains(ve.Fields["prompt"], "required") {
		t.Fatalf("canny without model and prompt: %v", err)
	}
	_, err = Form{Endpoint: "finetune", Model: readyModel}.Body(1)
	if !errors.As(err, &ve) || ve.Fields["endpoint"] == "" {
		t.Fatalf("a non-image endpoint must be refused: %v", err)
	}
}

func TestSeed(t *testing.T) {
	locked := Seed{Locked: true, Value: 1234}
	for range 5 {
		if locked.Pick() != 1234 {
			t.Fatal("a locked seed must repeat")
		}
	}
	seen := map[int64]bool{}
	for range 20 {
		s := Seed{Value: 1234}.Pick()
		if s < 0 || s >= maxSeed {
			t.Fatalf("seed %d out of range", s)
		}
		seen[s] = true
	}
	if len(seen) < 19 {
		t.Fatalf("random seeds repeat: %d distinct of 20", len(seen))
	}
}

func TestTriggerWord(t *testing.T) {
	for _, tc := range []struct {
		prompt, word string
		has          bool
		inserted     string
	}{
		{"a photo of ADA smiling", "ADA", true, "a photo of ADA smiling"},
		{"a photo of ada, smiling", "ADA", true, "a photo of ada, smiling"},
		{"a photo of ADAM", "ADA", false, "ADA a photo of ADAM"},
		{"", "TOK", false, "TOK"},
		{"anything", "", true, "anything"},
		{"TOK", "TOK", true, "TOK"},
		{"x (c++) y", "c++", true, "x (c++) y"},
	} {
		if got := HasTriggerWord(tc.prompt, tc.word); got != tc.has {
			t.Errorf("HasTriggerWord(%q, %q) = %v", tc.prompt, tc.word, got)
		}
		if got := InsertTriggerWord(tc.prompt, tc.word); got != tc.inserted {
			t.Errorf("InsertTriggerWord(%q, %q) = %q, want %q", tc.prompt, tc.word, got, tc.inserted)
		}
	}
}

func TestFormValuesRoundTrip(t *testing.T) {
	in := Form{Endpoint: "flux-pro-finetuned", Model: readyModel, Values: map[string]string{
		"prompt": "ADA  twice", "width": "1024", "height": "768", "finetune_strength": "0.7", "prompt_upsampling": "true", "output_format": "png",
	}}
	body, err := in.Body(5)
	if err != nil {
		t.Fatal(err)
	}
	vals := FormValues(params(body))
	again, err := Form{Endpoint: in.Endpoint, Model: readyModel, Values: vals}.Body(5)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(body)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Fatalf("settings do not round-trip:\n%s\n%s", a, b)
	}
}
