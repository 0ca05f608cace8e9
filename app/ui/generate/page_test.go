package generate

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/models"
	"github.com/fluxforge/fluxforge/app/ui/uitest"
)

func newTestPage(t *testing.T, flags map[string]bool) *Page {
	t.Helper()
	c := container.New(container.Options{OpenStorage: func(context.Context) (core.Storage, error) { return core.NewMemoryStorage(), nil }})
	for name, on := range flags {
		if err := c.Config().Set(c.Flags().Key(name), on); err != nil {
			t.Fatal(err)
		}
	}
	return New(c).(*Page)
}

func TestFormIsDrawnFromTheCatalog(t *testing.T) {
	out := uitest.Render(t, newTestPage(t, nil))
	ultra, _ := bfl.Lookup(defaultEndpoint)
	for _, f := range ultra.Fields {
		shown := strings.Contains(out, `id="field-`+f.Name+`"`)
		want := f.Name != "finetune_id" && !strings.HasPrefix(f.Name, "webhook_")
		if shown != want {
			t.Errorf("field %s shown=%v, want %v", f.Name, shown, want)
		}
	}
	for _, legacy := range []string{"flux-pro-1.0-depth-finetuned", "flux-pro-1.0-canny-finetuned"} {
		if strings.Contains(out, legacy) {
			t.Errorf("%s offered with the legacy flag off", legacy)
		}
	}
	if !strings.Contains(out, "(0 to 2; default 1.2)") {
		t.Error("finetune strength range and default not shown")
	}

	out = uitest.Render(t, newTestPage(t, map[string]bool{core.FlagImagePrompt: false, core.FlagLegacyEndpoints: true, core.FlagWebhooks: true}))
	if strings.Contains(out, "field-image_prompt") {
		t.Error("image prompt shown with its flag off")
	}
	if !strings.Contains(out, "flux-pro-1.0-canny-finetuned") || !strings.Contains(out, `id="field-webhook_url"`) {
		t.Error("legacy endpoints or webhook fields missing with their flags on")
	}
}

func TestProWidthAndHeightSnapAndCannyHasItsControlImage(t *testing.T) {
	p := newTestPage(t, map[string]bool{core.FlagLegacyEndpoints: true})
	p.endpoint = "flux-pro-finetuned"
	out := uitest.Render(t, p)
	if !strings.Contains(out, `id="field-width"`) || !strings.Contains(out, `step="32`) {
		t.Errorf("width without its 32 px step")
	}
	p = newTestPage(t, map[string]bool{core.FlagLegacyEndpoints: true})
	p.endpoint = "flux-pro-1.0-canny-finetuned"
	if out := uitest.Render(t, p); !strings.Contains(out, `id="field-control_image"`) || !strings.Contains(out, `id="field-canny_low_threshold"`) {
		t.Error("canny form lacks its control image or thresholds")
	}
}

func TestTriggerWordWarningAndRefusal(t *testing.T) {
	p := newTestPage(t, nil)
	prog := 40.0
	p.modelList = []models.Model{{ID: "a", Name: "Ada", TriggerWord: "ADA", Status: bfl.StatusPending, Progress: &prog}}
	p.modelID = "a"
	p.values["prompt"] = "a boat"
	out := uitest.Render(t, p)
	if !strings.Contains(out, `id="trigger-warning"`) || !strings.Contains(out, `id="insert-trigger"`) {
		t.Error("no trigger-word warning for a prompt without it")
	}
	if !strings.Contains(out, "still training (40%)") {
		t.Error("a model in training is not explained")
	}
}

func TestParamsListEverySetting(t *testing.T) {
	seed, cost := int64(9), 6.0
	rows := params(gallery.Record{ModelID: "m", ModelName: "Ada", Endpoint: defaultEndpoint, Prompt: "ADA", Seed: &seed, Cost: &cost,
		Params: map[string]any{"aspect_ratio": "16:9", "finetune_strength": 1.2, "seed": 9.0, "finetune_id": "m"}, Inputs: map[string]string{"image_prompt": "k"}})
	got := map[string]string{}
	for _, r := range rows {
		got[r[0]] = r[1]
	}
	for k, want := range map[string]string{"Seed": "9", "Cost": "6 credits", "aspect_ratio": "16:9", "finetune_strength": "1.2", "image_prompt": "(image kept)"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	if _, dup := got["seed"]; dup {
		t.Error("seed listed twice")
	}
}
