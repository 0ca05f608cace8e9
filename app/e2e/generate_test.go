package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiJSON calls the proxy's API from the test (as another client of the same
// account would) and decodes the answer.
func apiJSON(t *testing.T, method, u string, body any, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StepTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, u, err)
		}
	}
	return res.StatusCode
}

// createModel starts a finetune through the proxy with a one-image dataset
// and returns its id.
func createModel(t *testing.T, p *Proxy, name, trigger string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("face.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(w, photo(96, 96, 7), nil); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var sub struct {
		ID         string `json:"id"`
		FinetuneID string `json:"finetune_id"`
	}
	status := apiJSON(t, http.MethodPost, p.URL+"/api/v1/finetune", map[string]any{
		"file_data": base64.StdEncoding.EncodeToString(buf.Bytes()), "finetune_comment": name,
		"trigger_word": trigger, "mode": "character", "iterations": 100,
	}, &sub)
	if status != http.StatusOK || sub.ID == "" && sub.FinetuneID == "" {
		t.Fatalf("create finetune: HTTP %d %+v", status, sub)
	}
	if sub.FinetuneID != "" {
		return sub.FinetuneID
	}
	return sub.ID
}

// trainingStatus reads a finetune's training status.
func trainingStatus(t *testing.T, p *Proxy, id string) string {
	t.Helper()
	var r struct {
		Status string `json:"status"`
	}
	apiJSON(t, http.MethodGet, p.URL+"/api/v1/get_result?id="+url.QueryEscape(id), nil, &r)
	return r.Status
}

func waitReady(t *testing.T, p *Proxy, id string) {
	t.Helper()
	deadline := time.Now().Add(StepTimeout)
	for trainingStatus(t, p, id) != "Ready" {
		if time.Now().After(deadline) {
			t.Fatalf("finetune %s not Ready within %v", id, StepTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openGenerate opens the tab with the model chosen and waits until the
// model list has loaded with it selected.
func openGenerate(t *testing.T, b *Browser, p *Proxy, modelID string) {
	t.Helper()
	b.Open(t, p.URL+"/generate?model="+url.QueryEscape(modelID))
	b.WaitTrue(t, fmt.Sprintf(`document.querySelector('#model-select')?.value === %q`, modelID))
}

// generateWithReadyModel starts the proxy with env (training takes a second
// unless env says otherwise), trains a model to Ready and opens the Generate
// tab with it chosen.
func generateWithReadyModel(t *testing.T, env map[string]string, name, trigger string) (*Proxy, *Browser, string) {
	t.Helper()
	vars := map[string]string{"SIM_TRAIN_SECONDS": "1"}
	maps.Copy(vars, env)
	p := StartProxy(t, vars)
	id := createModel(t, p, name, trigger)
	waitReady(t, p, id)
	b := NewBrowser(t)
	openGenerate(t, b, p, id)
	return p, b, id
}

// generate types a prompt and clicks Generate.
func generate(t *testing.T, b *Browser, prompt string) {
	t.Helper()
	clearInput(t, b, "field-prompt")
	b.Do(t, chromedp.SendKeys(chromedp.ID("field-prompt"), prompt), chromedp.Click(chromedp.ID("generate")))
}

// clearInput empties a field the way a user would, so the app hears an input event.
func clearInput(t *testing.T, b *Browser, id string) {
	t.Helper()
	b.Do(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const e = document.getElementById(%q); e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})) })()`, id)))
}

func TestGenerateUltraKeepsTheImageWithItsSettings(t *testing.T) {
	// Samples die 4 s after they are made: the gallery must not depend on them.
	p, b, id := generateWithReadyModel(t, map[string]string{"SIM_SAMPLE_TTL": "4s"}, "Ada portraits", "ADAX")

	if got := Eval[string](t, b, `document.querySelector('#endpoint-select').value`); got != "flux-pro-1.1-ultra-finetuned" {
		t.Fatalf("default endpoint %q", got)
	}
	b.Do(t, chromedp.SendKeys(chromedp.ID("field-prompt"), "a portrait by the sea"))
	b.WaitText(t, chromedp.CSS("#trigger-warning"), "ADAX")
	b.Do(t, chromedp.Click(chromedp.ID("insert-trigger")))
	b.WaitTrue(t, `document.querySelector('#field-prompt').value === 'ADAX a portrait by the sea' && !document.querySelector('#trigger-warning')`)
	b.Do(t, chromedp.Click(chromedp.CSS(`.presets .ar-preset:nth-child(1)`))) // 21:9 first...
	b.Do(t, chromedp.Click(chromedp.CSS(`.presets .ar-preset:nth-child(2)`))) // ...then 16:9
	b.WaitTrue(t, `document.querySelector('.presets .ar-preset:nth-child(2)').getAttribute('aria-pressed') === 'true'`)
	b.Do(t, chromedp.Click(chromedp.ID("generate")))

	seedText := b.WaitText(t, chromedp.CSS(".result-seed"), "Seed ")
	seed := strings.TrimPrefix(strings.TrimSpace(seedText), "Seed ")
	if _, err := strconv.ParseInt(seed, 10, 64); err != nil {
		t.Fatalf("seed shown %q", seedText)
	}
	b.WaitTrue(t, `(() => { const i = document.querySelector('.result-image'); return i && i.complete && i.naturalWidth > 0 })()`)
	ratio := Eval[float64](t, b, `(() => { const i = document.querySelector('.result-image'); return i.naturalWidth / i.naturalHeight })()`)
	if ratio < 1.76 || ratio > 1.79 {
		t.Fatalf("image ratio %.3f, want 16:9", ratio)
	}
	// The seed field now shows the seed used, ready to lock.
	if got := Eval[string](t, b, `document.querySelector('#field-seed').value`); got != seed {
		t.Fatalf("seed field %q, want %q", got, seed)
	}

	// Let BFL's link expire, then reload: the image comes from the browser's storage.
	sample := Eval[string](t, b, `new Promise(res => { const r = indexedDB.open("fluxforge"); r.onsuccess = () => {
		const g = r.result.transaction("gallery").objectStore("gallery").getAll();
		g.onsuccess = () => res(JSON.parse(g.result[0]).result.sample); }; })`)
	deadline := time.Now().Add(StepTimeout)
	for apiJSON(t, http.MethodGet, p.URL+"/api/image?url="+url.QueryEscape(sample), nil, nil) == http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the sample link never expired")
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Open(t, p.URL+"/generate")
	b.WaitTrue(t, `document.querySelectorAll('#gallery .gallery-item').length === 1`)
	b.WaitTrue(t, `(() => { const i = document.querySelector('.gallery-item img'); return i && i.complete && i.naturalWidth > 0 })()`)
	b.Do(t, chromedp.Click(chromedp.CSS(".gallery-item")))
	params := b.WaitText(t, chromedp.CSS("#viewer .params"), "aspect_ratio")
	for _, want := range []string{"16:9", seed, "ADAX a portrait by the sea", "Ada portraits", "flux-pro-1.1-ultra-finetuned", "finetune_strength", "1.2", "output_format", "credits"} {
		if !strings.Contains(params, want) {
			t.Errorf("viewer lacks %q:\n%s", want, params)
		}
	}

	// "Use these settings" fills the form, seed locked.
	b.Do(t,
		chromedp.Click(chromedp.CSS(".presets .ar-preset:nth-child(5)")), // 1:1, to see it change back
		chromedp.Click(chromedp.CSS(".gallery-item")),
		chromedp.Click(chromedp.ID("use-settings")),
	)
	b.WaitTrue(t, fmt.Sprintf(`document.querySelector('#field-seed').value === %q && document.querySelector('#seed-lock').checked`, seed))
	b.WaitTrue(t, `document.querySelector('#field-prompt').value === 'ADAX a portrait by the sea'`)
	b.WaitTrue(t, `document.querySelector('.presets .ar-preset:nth-child(2)').getAttribute('aria-pressed') === 'true'`)
	if got := Eval[string](t, b, `document.querySelector('#model-select').value`); got != id {
		t.Fatalf("model after use-settings %q", got)
	}

	// Delete removes it, also after a reload.
	b.Do(t, chromedp.Click(chromedp.CSS(".gallery-item")), chromedp.Click(chromedp.ID("delete-image")))
	b.WaitTrue(t, `document.querySelectorAll('.gallery-item').length === 0`)
	b.Open(t, p.URL+"/generate")
	b.WaitTrue(t, `!!document.querySelector('#gallery-empty')`)
	b.CheckConsole(t)
}

func TestGenerateRefusesAModelStillTraining(t *testing.T) {
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "600"})
	id := createModel(t, p, "Slow learner", "SLW")
	b := NewBrowser(t)
	openGenerate(t, b, p, id)
	b.WaitText(t, chromedp.CSS("#model-refusal"), "still training")
	generate(t, b, "SLW on a hill")
	b.WaitText(t, chromedp.CSS("#generate-error"), "still training")
	if strings.Contains(p.Log(), "flux-pro-1.1-ultra-finetuned") {
		t.Fatal("a generation was submitted for a model still training")
	}
	b.CheckConsole(t)
}

func TestGenerateShowsModerationAndErrors(t *testing.T) {
	_, b, _ := generateWithReadyModel(t, nil, "Faults", "FLT")
	for _, tc := range []struct{ marker, want string }{
		{"[sim:content-moderated]", "The image was moderated"},
		{"[sim:request-moderated]", "The request was moderated"},
		{"[sim:error]", "BFL reported an error"},
	} {
		generate(t, b, "FLT "+tc.marker)
		b.WaitText(t, chromedp.CSS(".result:first-child .result-reason"), tc.want)
	}
	// The moderation reasons BFL sends are shown, not just the status.
	txt := Eval[string](t, b, `[...document.querySelectorAll('.result-reason')].map(e => e.textContent).join('\n')`)
	if !strings.Contains(txt, "moderated: ") {
		t.Errorf("no moderation reasons shown:\n%s", txt)
	}
	if n := Eval[int](t, b, `document.querySelectorAll('.gallery-item').length`); n != 0 {
		t.Errorf("failed tasks put %d images in the gallery", n)
	}
	b.CheckConsole(t)
}

func TestGenerateFillWithAPaintedMask(t *testing.T) {
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "1"})
	id := createModel(t, p, "Painter", "PNT")
	waitReady(t, p, id)
	img := filepath.Join(t.TempDir(), "room.jpg")
	writePhoto(t, img, 640, 480, 11)
	b := NewBrowser(t)
	openGenerate(t, b, p, id)
	b.Do(t, chromedp.SetValue(chromedp.ID("endpoint-select"), "flux-pro-1.0-fill-finetuned"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('endpoint-select').dispatchEvent(new Event('change', {bubbles: true}))`))
	b.WaitTrue(t, `!!document.getElementById('field-image')`)
	b.Do(t, chromedp.SetUploadFiles(chromedp.ID("field-image"), []string{img}))
	b.WaitTrue(t, `(() => { const c = document.getElementById('mask-canvas'); return c && c.width === 640 && c.height === 480 })()`)

	// Paint a stroke across the middle with the mouse.
	b.Do(t, chromedp.ScrollIntoView(chromedp.ID("mask-canvas")))
	// The canvas takes its shown size from the image under it, once that is decoded.
	b.WaitTrue(t, `document.getElementById('mask-canvas').getBoundingClientRect().height > 100`)
	box := Eval[[]float64](t, b, `(() => { const r = document.getElementById('mask-canvas').getBoundingClientRect(); return [r.left, r.top, r.width, r.height] })()`)
	x0, y, x1 := box[0]+box[2]*0.25, box[1]+box[3]*0.5, box[0]+box[2]*0.75
	b.Do(t, chromedp.MouseEvent(chromedp.MousePressed, x0, y, chromedp.ButtonLeft))
	for x := x0; x <= x1; x += 10 {
		b.Do(t, chromedp.MouseEvent(chromedp.MouseMoved, x, y, chromedp.ButtonLeft))
	}
	b.Do(t, chromedp.MouseEvent(chromedp.MouseReleased, x1, y, chromedp.ButtonLeft))
	white := Eval[[]int](t, b, `(() => { const d = document.getElementById('mask-canvas').getContext('2d').getImageData(0, 0, 640, 480).data;
		let w = 0, k = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] > 200) w++; else if (d[i] < 50 && d[i+3] === 255) k++; } return [w, k] })()`)
	if white[0] < 5000 || white[1] < 200000 {
		t.Fatalf("mask has %d white and %d black pixels: the stroke was not painted over black", white[0], white[1])
	}

	generate(t, b, "PNT a window")
	b.WaitText(t, chromedp.CSS(".result-seed"), "Seed ")
	b.Do(t, chromedp.Click(chromedp.CSS(".result-image")))
	params := b.WaitText(t, chromedp.CSS("#viewer .params"), "mask")
	if !strings.Contains(params, "image") || !strings.Contains(params, "flux-pro-1.0-fill-finetuned") {
		t.Errorf("viewer: %s", params)
	}
	b.CheckConsole(t)
}

func TestGenerateVariationsBatch(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"flags":{"batches":true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, b, _ := generateWithReadyModel(t, map[string]string{"CONFIG_FILE": file}, "Batcher", "BTC")
	b.Do(t, chromedp.SendKeys(chromedp.ID("field-prompt"), "BTC in the rain"))
	b.Do(t, chromedp.Click(chromedp.CSS("#batch summary")))
	clearInput(t, b, "batch-count")
	b.Do(t, chromedp.SendKeys(chromedp.ID("batch-count"), "3"), chromedp.Click(chromedp.ID("generate-variations")))
	b.WaitTrue(t, `document.querySelectorAll('.result .result-seed').length === 3`)
	seeds := Eval[[]string](t, b, `[...document.querySelectorAll('.result .result-seed')].map(e => e.textContent)`)
	if seeds[0] == seeds[1] || seeds[1] == seeds[2] || seeds[0] == seeds[2] {
		t.Fatalf("variations share a seed: %v", seeds)
	}
	b.WaitTrue(t, `document.querySelectorAll('.gallery-item').length === 3`)

	// Two of them side by side: the seeds differ, the prompt does not.
	// Each click waits for the viewer it opens: a toggle clicked before the
	// next picture's viewer is drawn would act on the previous picture.
	for _, n := range []int{1, 2} {
		b.Do(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(".gallery-item:nth-child(%d)", n))))
		b.WaitTrue(t, `document.querySelector('#compare-toggle')?.getAttribute('aria-pressed') === 'false'`)
		b.Do(t, chromedp.Click(chromedp.ID("compare-toggle")))
		if n == 1 {
			b.WaitTrue(t, `document.querySelector('#compare-toggle')?.getAttribute('aria-pressed') === 'true'`)
		}
	}
	b.WaitTrue(t, `document.querySelectorAll('#compare img').length === 2 && !document.querySelector('#viewer')`)
	diff := Eval[[]string](t, b, `[...document.querySelectorAll('#compare tr.diff th')].map(e => e.textContent)`)
	if !slices.Contains(diff, "Seed") || slices.Contains(diff, "Prompt") {
		t.Errorf("rows marked different: %v", diff)
	}
	b.CheckConsole(t)
}

// A second click while a submit is on its way does not submit again: each
// submit is a charge. The button is disabled until BFL has accepted the
// first; a click forced through anyway changes nothing.
func TestGenerateTwoQuickClicksMakeOneTask(t *testing.T) {
	_, b, _ := generateWithReadyModel(t, nil, "Ada", "ADAX")
	generate(t, b, "ADAX by the sea [sim:slow=2s]")
	b.WaitTrue(t, `document.getElementById('generate').disabled`)
	// What a second click would do, disabled or not.
	b.Do(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('generate').dispatchEvent(new MouseEvent('click', {bubbles: true}))`))
	b.WaitTrue(t, `!document.getElementById('generate').disabled && document.querySelectorAll('#results .result').length >= 1`)
	// A second task would have been submitted by now and shown within its 2 s.
	time.Sleep(3 * time.Second)
	if n := Eval[int](t, b, `document.querySelectorAll('#results .result').length`); n != 1 {
		t.Errorf("two clicks during one submit made %d tasks", n)
	}
}
