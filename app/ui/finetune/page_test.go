package finetune

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
	"github.com/fluxforge/fluxforge/app/ui/uitest"
)

func TestFitPixelsKeepsAspectUnderOneMegapixel(t *testing.T) {
	for _, c := range []struct{ w, h int }{{4000, 3000}, {3000, 4000}, {6000, 2000}, {1001, 1000}, {4242, 2829}} {
		w, h := fitPixels(c.w, c.h, maxPixels)
		if w*h > maxPixels {
			t.Errorf("%dx%d -> %dx%d = %d px, over 1 MP", c.w, c.h, w, h, w*h)
		}
		if w*h < maxPixels*99/100 {
			t.Errorf("%dx%d -> %dx%d shrank more than needed", c.w, c.h, w, h)
		}
		if ratio := float64(w) / float64(h); math.Abs(ratio-float64(c.w)/float64(c.h)) > 0.01 {
			t.Errorf("%dx%d -> %dx%d changes the aspect ratio", c.w, c.h, w, h)
		}
	}
	for _, c := range []struct{ w, h int }{{1000, 1000}, {800, 600}, {0, 0}} {
		if w, h := fitPixels(c.w, c.h, maxPixels); w != c.w || h != c.h {
			t.Errorf("%dx%d changed to %dx%d though within 1 MP", c.w, c.h, w, h)
		}
	}
}

func newTestPage() *Page {
	c := container.New(container.Options{OpenStorage: func(context.Context) (core.Storage, error) { return core.NewMemoryStorage(), nil }})
	p := New(c).(*Page)
	p.restored = true
	return p
}

func TestRenderShowsEveryCatalogFieldWithRangeAndAutomaticRate(t *testing.T) {
	out := uitest.Render(t, newTestPage())
	for _, f := range finetuning.FormFields(false) {
		if !strings.Contains(out, `id="field-`+f.Name+`"`) || !strings.Contains(out, `id="field-`+f.Name+`-error"`) {
			t.Errorf("field %s (or its error slot) missing", f.Name)
		}
	}
	if strings.Contains(out, "field-webhook_url") {
		t.Error("webhook fields shown with the flag off")
	}
	if !strings.Contains(out, "Range 100 to 1000. Default 300.") {
		t.Error("iterations range and default not shown")
	}
	if !strings.Contains(out, `id="preset-general-quick"`) ||
		!strings.Contains(out, "(Iterations 150, Priority speed, Finetune type lora, Lora rank 16)") {
		t.Error("presets do not show what they set")
	}
	if !strings.Contains(out, "1e-05 (automatic for full)") {
		t.Error("learning rate does not show the full default")
	}
	p := newTestPage()
	p.setField(finetuning.FieldType, "lora")
	if out := uitest.Render(t, p); !strings.Contains(out, "0.0001 (automatic for lora)") {
		t.Error("learning rate placeholder did not follow the type")
	}
}

func TestRenderRefuses21ImagesWithAClearMessage(t *testing.T) {
	p := newTestPage()
	for i := range 21 {
		data := append([]byte{0xFF, 0xD8, 0xFF}, []byte(fmt.Sprint(i))...)
		p.ds.AddImage(finetuning.Image{Name: fmt.Sprintf("p%d.jpg", i), Format: finetuning.FormatJPEG, Data: data})
	}
	out := uitest.Render(t, p)
	if !strings.Contains(out, "21 images: BFL accepts at most 20, remove 1.") {
		t.Error("no clear message for 21 images")
	}
	if !strings.Contains(out, `id="start-blocked"`) || p.blockedReason() == "" {
		t.Error("start is not blocked for 21 images")
	}
	p20 := newTestPage()
	p20.ds = p.ds.Clone()
	p20.removeImage("p0.jpg")
	if out := uitest.Render(t, p20); strings.Contains(out, "at most 20") || p20.blockedReason() != "" {
		t.Error("still blocked with 20 images")
	}
}

func TestReadyJobOffersGenerateAndErrorsLandOnFields(t *testing.T) {
	p := newTestPage()
	full := 100.0
	p.jobs = []finetuning.Job{
		{ID: "ab-12", Name: "Ada", TriggerWord: "ADA", Mode: "character", Type: "full", Status: bfl.StatusReady,
			Progress: &full, Started: time.Unix(0, 0), Ended: time.Unix(90, 0)},
		{ID: "cd-34", Name: "Bob", Status: bfl.StatusPending, Started: time.Unix(0, 0)},
	}
	refusal := &core.APIError{Status: 422, Field: "iterations", Message: "BFL refused the request: iterations: Input should be less than or equal to 1000",
		Detail: bfl.DecodeError(422, []byte(`{"detail":[{"loc":["body","iterations"],"msg":"Input should be less than or equal to 1000","type":"less_than_equal"}]}`))}
	if f := p.failed(refusal); f != "iterations" {
		t.Errorf("field to show = %q", f)
	}
	out := uitest.Render(t, p)
	if !strings.Contains(out, `href="/generate?model=ab-12"`) || strings.Count(out, "Generate with this model") != 1 {
		t.Error("only the Ready job should link to /generate?model=<id>")
	}
	if !strings.Contains(out, "1m30s") {
		t.Error("elapsed time of the done job missing")
	}
	if p.fieldErrs["iterations"] != "Input should be less than or equal to 1000." || !strings.Contains(p.startErr, "kept") {
		t.Errorf("422 not placed on its field: %v %q", p.fieldErrs, p.startErr)
	}
	p.failed(&core.APIError{Status: 402, Message: "Out of credits: top up at BFL."})
	if !strings.HasPrefix(p.startErr, "Out of credits") {
		t.Errorf("402 explanation: %q", p.startErr)
	}
}

func TestJobChangesUpdateTheListInPlace(t *testing.T) {
	p := newTestPage()
	p.jobs = []finetuning.Job{{ID: "old", Status: bfl.StatusReady}, {ID: "run", Status: bfl.StatusPending}}
	p.upsert(finetuning.Job{ID: "run", Status: bfl.StatusReady})
	p.upsert(finetuning.Job{ID: "new", Status: bfl.StatusPending})
	var got []string
	for _, j := range p.jobs {
		got = append(got, j.ID+":"+string(j.Status))
	}
	if want := "new:Pending old:Ready run:Ready"; strings.Join(got, " ") != want {
		t.Errorf("jobs %v, want %s", got, want)
	}
}
