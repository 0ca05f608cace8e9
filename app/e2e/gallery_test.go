//go:build !js

package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// A generated image leaves the browser two ways, both from its own storage
// (the proxy is stopped first): Download saves it under the model's name and
// its seed, and Export ZIP saves the whole gallery with a manifest. Both
// give the same bytes, a real image of the shape asked for.
func TestGalleryDownloadAndExportWorkOffline(t *testing.T) {
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "1"})
	id := createModel(t, p, "Ada portraits", "ADAX")
	waitReady(t, p, id)
	b := NewBrowser(t)
	downloads := b.Downloads(t)
	openGenerate(t, b, p, id)
	b.Do(t, chromedp.Click(chromedp.CSS(`.presets .ar-preset:nth-child(2)`))) // 16:9
	b.WaitTrue(t, `document.querySelector('.presets .ar-preset:nth-child(2)').getAttribute('aria-pressed') === 'true'`)
	generate(t, b, "ADAX at the harbour")
	seed := strings.TrimPrefix(strings.TrimSpace(b.WaitText(t, chromedp.CSS(".result-seed"), "Seed ")), "Seed ")
	if _, err := strconv.ParseInt(seed, 10, 64); err != nil {
		t.Fatalf("seed %q", seed)
	}
	b.WaitTrue(t, `document.querySelectorAll('#gallery .gallery-item').length === 1`)
	b.WaitTrue(t, `(() => { const i = document.querySelector('.gallery-item img'); return i && i.complete && i.naturalWidth > 0 })()`)
	p.Stop(t)

	b.Do(t, chromedp.Click(chromedp.CSS(".gallery-item")), chromedp.Click(chromedp.ID("download-image")))
	img := NextDownload(t, downloads)
	if !regexp.MustCompile(`^Ada-portraits-` + seed + `\.(png|jpg|webp)$`).MatchString(img.Name) {
		t.Errorf("download named %q, want Ada-portraits-%s with the image's extension", img.Name, seed)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img.Data))
	if err != nil {
		t.Fatalf("the download is not an image: %v (%d bytes)", err, len(img.Data))
	}
	if !strings.HasSuffix(img.Name, "."+map[string]string{"jpeg": "jpg"}[format]) && !strings.HasSuffix(img.Name, "."+format) {
		t.Errorf("a %s image named %q", format, img.Name)
	}
	if r := float64(cfg.Width) / float64(cfg.Height); r < 1.76 || r > 1.79 {
		t.Errorf("downloaded image %dx%d, want 16:9", cfg.Width, cfg.Height)
	}

	b.Do(t, chromedp.Click(chromedp.ID("export-gallery")))
	archive := NextDownload(t, downloads)
	if !regexp.MustCompile(`^fluxforge-gallery-\d{8}-\d{6}\.zip$`).MatchString(archive.Name) {
		t.Errorf("export named %q", archive.Name)
	}
	zr, err := zip.NewReader(bytes.NewReader(archive.Data), int64(len(archive.Data)))
	if err != nil {
		t.Fatalf("the export is not a ZIP: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
	}
	var manifest struct {
		Entries []struct {
			Record struct {
				Prompt string `json:"prompt"`
				Seed   *int64 `json:"seed"`
			} `json:"record"`
			Files map[string]struct {
				Name string `json:"name"`
			} `json:"files"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, files["manifest.json"])
	}
	if len(manifest.Entries) != 1 {
		t.Fatalf("manifest has %d entries, want 1", len(manifest.Entries))
	}
	e := manifest.Entries[0]
	if e.Record.Prompt != "ADAX at the harbour" || e.Record.Seed == nil || strconv.FormatInt(*e.Record.Seed, 10) != seed {
		t.Errorf("manifest record %+v", e.Record)
	}
	found := false
	for _, f := range e.Files {
		if bytes.Equal(files[f.Name], img.Data) {
			found = true
		}
	}
	if !found {
		t.Errorf("no file in the export equals the downloaded image; files %v", e.Files)
	}
}
