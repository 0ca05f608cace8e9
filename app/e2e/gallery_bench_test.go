package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/gallery"
)

// galleryArchive writes a gallery export of n generated 16:9 JPEGs, the way
// the app itself exports, and returns its path and size.
func galleryArchive(t *testing.T, n int) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := gallery.New(core.NewMemoryStorage())
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		var img bytes.Buffer
		if err := jpeg.Encode(&img, photo(768, 432, uint64(i+1)), &jpeg.Options{Quality: 80}); err != nil {
			t.Fatal(err)
		}
		seed := int64(i)
		r := gallery.Record{
			ID: fmt.Sprintf("bench-%03d", i), Endpoint: "flux-pro-1.1-ultra-finetuned", ModelID: "m", ModelName: "Bench",
			Prompt: fmt.Sprintf("picture %d", i), Seed: &seed, Status: bfl.StatusReady,
			Params:  map[string]any{"aspect_ratio": "16:9", "finetune_strength": 1.2},
			Created: start.Add(time.Duration(i) * time.Second),
		}
		if _, err := g.SaveImage(ctx, r, img.Bytes(), "image/jpeg"); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "gallery.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := g.Export(ctx, f, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return path, int(st.Size())
}

// allThumbsShown is true once n thumbnails are in the page and those in view
// are decoded. Thumbnails load lazily, so it scrolls the gallery into view as a
// user would; those further down wait for further scrolling.
func allThumbsShown(n int) string {
	return fmt.Sprintf(`(() => { document.getElementById('gallery-grid')?.scrollIntoView();
		const imgs = [...document.querySelectorAll('.gallery-item img')];
		const seen = imgs.filter(i => { const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight });
		return imgs.length === %d && seen.length > 0 && seen.every(i => i.complete && i.naturalWidth > 0) })()`, n)
}

// timeOpen loads the Generate tab and returns how long until cond holds, from navigation start.
func timeOpen(t *testing.T, b *Browser, url, cond string) time.Duration {
	t.Helper()
	start := time.Now()
	b.Open(t, url)
	b.WaitTrue(t, cond)
	return time.Since(start)
}

// TestBenchGallery200 imports a gallery of 200 images in Chromium, then times
// opening the Generate tab until every thumbnail is drawn, against opening it
// with an empty gallery in the same run.
//
//	E2E_BENCH=1 E2E_SITE=$PWD/build/site go test -count=1 -run TestBenchGallery200 -v ./app/e2e/
func TestBenchGallery200(t *testing.T) {
	if os.Getenv("E2E_BENCH") != "1" {
		t.Skip("set E2E_BENCH=1 to run the gallery benchmark")
	}
	const n = 200
	archive, size := galleryArchive(t, n)
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	ready := `!!document.querySelector('#gallery-empty') || document.querySelectorAll('.gallery-item').length > 0`

	timeOpen(t, b, p.URL+"/generate", ready) // warm the service worker and caches
	empty := timeOpen(t, b, p.URL+"/generate", `!!document.querySelector('#gallery-empty')`)

	start := time.Now()
	b.Do(t, chromedp.SetUploadFiles(chromedp.ID("import-gallery"), []string{archive}))
	b.WaitTrue(t, allThumbsShown(n))
	imported := time.Since(start)

	var full time.Duration
	const runs = 3
	for range runs {
		full += timeOpen(t, b, p.URL+"/generate", allThumbsShown(n))
	}
	full /= runs
	used := Eval[float64](t, b, `navigator.storage.estimate().then(e => e.usage / 1048576)`)
	fmt.Printf("gallery bench: %d images, archive %.1f MB\n", n, float64(size)/1048576)
	fmt.Printf("  import (read ZIP, store, draw):        %v\n", imported.Round(time.Millisecond))
	fmt.Printf("  open tab, empty gallery (baseline):    %v\n", empty.Round(time.Millisecond))
	fmt.Printf("  open tab, %d thumbnails, those in view drawn (avg of %d): %v (%.2fx the baseline)\n", n, runs, full.Round(time.Millisecond), full.Seconds()/empty.Seconds())
	fmt.Printf("  browser storage used:                  %.1f MB\n", used)
	b.CheckConsole(t)
}
