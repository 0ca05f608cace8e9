package e2e

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestScreenshots drives the app in simulated mode through a finetune and
// a generation and saves full-page pictures of the three tabs for the
// README. It runs only when SCREENSHOTS names the directory to write
// (make screenshots sets it).
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("SCREENSHOTS")
	if dir == "" {
		t.Skip("SCREENSHOTS is not set (make screenshots sets it)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "2", "SIM_GENERATE_SECONDS": "1"})
	b := NewBrowser(t)
	b.Do(t, chromedp.EmulateViewport(1280, 800))
	openFinetune(t, b, p.URL)

	// One model trained from three photos, and a second dataset in the
	// works, so the tab shows both a job and a dataset.
	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	typeInto(t, b, "field-finetune_comment", "Studio portraits")
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	b.WaitText(t, "#jobs", "Studio portraits")
	b.WaitText(t, "#dataset-summary", "0 image(s)")
	b.WaitText(t, "#jobs .job-status", "Ready")
	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	typeInto(t, b, "field-finetune_comment", "Product shots")
	b.WaitTrue(t, `[...document.querySelectorAll('.thumb img')].length === 3 &&
		[...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth > 0)`)
	capture(t, b, filepath.Join(dir, "finetune.png"))

	href := Eval[string](t, b, `document.querySelector('#jobs .job-generate')?.getAttribute('href') ?? ''`)
	if !strings.HasPrefix(href, "/generate?model=") {
		t.Fatalf("the Ready job links to %q, not to the Generate tab", href)
	}

	b.Do(t, chromedp.Click(chromedp.ID("nav-models")))
	b.WaitText(t, "#models-table", "Studio portraits")
	b.WaitText(t, "#models-table .model-status", "Ready")
	capture(t, b, filepath.Join(dir, "models.png"))

	b.Open(t, p.URL+href)
	b.WaitTrue(t, `document.getElementById('model-select')?.selectedOptions[0]?.text === 'Studio portraits'`)
	typeInto(t, b, "field-prompt", "a portrait of TOK in a sunlit studio, soft light")
	b.Do(t, chromedp.Click(chromedp.ID("generate")))
	b.WaitText(t, "#results .result-status", "Ready")
	b.WaitTrue(t, `[...document.querySelectorAll('.result-image, #gallery-grid img')].length >= 2 &&
		[...document.querySelectorAll('.result-image, #gallery-grid img')].every(i => i.complete && i.naturalWidth > 0)`)
	capture(t, b, filepath.Join(dir, "generate.png"))
	b.CheckConsole(t)
}

// capture saves a full-page PNG, 1280 px wide as the window, with focus
// and toasts cleared so they hide nothing, and checks it is the running app.
func capture(t *testing.T, b *Browser, path string) {
	t.Helper()
	Eval[bool](t, b, `(() => {
		document.activeElement?.blur(); // no caret or focus ring in the picture
		document.querySelectorAll('.toast-close').forEach(e => e.click());
		return true;
	})()`)
	b.WaitTrue(t, `document.querySelectorAll('.toast').length === 0`)
	// Let layout and image decoding settle into the next frames.
	Eval[bool](t, b, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
	if Eval[bool](t, b, `!!document.getElementById('app-wasm-loader')`) {
		t.Fatalf("%s: the wasm loader is still showing", path)
	}
	height := Eval[float64](t, b, `document.documentElement.scrollHeight`)
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{Width: 1280, Height: height, Scale: 1},
		CaptureBeyondViewport: new(true),
	})
	if err != nil {
		t.Fatalf("%s: screenshot: %v", path, err)
	}
	img, err := png.Decode(bytes.NewReader(res.Data))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", path, err)
	}
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != 1280 || h < 800 {
		t.Errorf("%s: %dx%d, want 1280 wide and at least 800 high", path, w, h)
	}
	if err := os.WriteFile(path, res.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes, %d px high)", path, len(res.Data), img.Bounds().Dy())
	// A page wider than the window scrolls sideways, and the picture
	// would cut its right edge off.
	if w := Eval[float64](t, b, `document.documentElement.scrollWidth`); w > 1280 {
		t.Errorf("%s: the page is %.0f px wide in a 1280 px window", path, w)
	}
}
