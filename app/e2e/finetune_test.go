package e2e

import (
	"archive/zip"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// photo draws a w x h picture of gradients with noise, so that it
// compresses like a photograph rather than like a flat fill.
func photo(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	a, b, c := r.IntN(256), r.IntN(256), r.IntN(256)
	for y := range h {
		for x := range w {
			n := r.IntN(24)
			i := img.PixOffset(x, y)
			img.Pix[i] = uint8((a + x*255/w + n) % 256)
			img.Pix[i+1] = uint8((b + y*255/h + n) % 256)
			img.Pix[i+2] = uint8((c + (x+y)*128/(w+h) + n) % 256)
			img.Pix[i+3] = 255
		}
	}
	return img
}

// writePhoto writes a generated photo as JPEG, or PNG for a .png path.
func writePhoto(t testing.TB, path string, w, h int, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img := photo(w, h, seed)
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(f, img)
	} else {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// threePhotos writes one photo over 1 MP, two under it, and a caption for
// the big one; it returns the four paths.
func threePhotos(t *testing.T) []string {
	dir := t.TempDir()
	paths := []string{
		filepath.Join(dir, "portrait.jpg"), filepath.Join(dir, "side.png"), filepath.Join(dir, "smile.jpg"),
		filepath.Join(dir, "portrait.txt"),
	}
	writePhoto(t, paths[0], 1600, 1200, 1)
	writePhoto(t, paths[1], 640, 480, 2)
	writePhoto(t, paths[2], 800, 600, 3)
	if err := os.WriteFile(paths[3], []byte("a portrait of TOK in a park\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return paths
}

// openFinetune opens the tab and waits until its saved draft is loaded.
func openFinetune(t *testing.T, b *Browser, base string) {
	t.Helper()
	b.Open(t, base+"/finetune")
	b.WaitTrue(t, `document.querySelector('#tab-finetune')?.dataset.restored === 'true'`)
}

func addFiles(t *testing.T, b *Browser, paths []string) {
	t.Helper()
	b.Do(t, chromedp.SetUploadFiles(chromedp.ID("dataset-input"), paths))
}

// typeInto replaces a field's text and fires the input event, as typing does.
func typeInto(t *testing.T, b *Browser, id, text string) {
	t.Helper()
	b.Do(t, chromedp.Click(chromedp.ID(id)))
	js := fmt.Sprintf(`(() => {
		const e = document.getElementById(%q);
		e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true}));
		return e.value;
	})()`, id, text)
	if got := Eval[string](t, b, js); got != text {
		t.Fatalf("#%s holds %q after typing %q", id, got, text)
	}
}

func TestFinetuneFromPhotosToReadyModelSurvivingReload(t *testing.T) {
	// Training lasts long enough to reload in the middle of it.
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "25"})
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)

	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	b.WaitText(t, "#checks", "Only 3 images")
	sizes := b.WaitText(t, `.thumb[data-name="portrait.jpg"] .thumb-sizes`, "→ sent")
	// 1600x1200 scaled to at most one megapixel, aspect kept.
	if !strings.Contains(sizes, "1600×1200") || !strings.Contains(sizes, "1154×866") {
		t.Errorf("portrait.jpg sizes %q: want 1600×1200 downscaled to 1154×866", sizes)
	}
	if s := b.WaitText(t, `.thumb[data-name="side.png"] .thumb-sizes`, "640×480"); strings.Contains(s, "sent") {
		t.Errorf("an image under 1 MP was re-encoded: %q", s)
	}
	// The caption file pairs when its own read lands, which may be after
	// the images are counted.
	b.WaitTrue(t, `document.querySelector('.thumb[data-name="portrait.jpg"] textarea')?.value === 'a portrait of TOK in a park'`)

	// Throttle the upload so its progress is observable, and record every
	// value the progress bar shows.
	if _, err := chromedp.Call(b.Ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{URLPattern: p.URL + "/api/v1/finetune", DownloadThroughput: -1, UploadThroughput: 400_000}},
	}); err != nil {
		t.Fatalf("throttle: %v", err)
	}
	Eval[bool](t, b, `(() => {
		window.progressSeen = [];
		new MutationObserver(() => {
			const e = document.getElementById('upload-progress');
			if (e) window.progressSeen.push(+e.value);
		}).observe(document.body, {subtree: true, childList: true, attributes: true});
		return true;
	})()`)
	typeInto(t, b, "field-finetune_comment", "E2E portraits")
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	b.WaitText(t, "#jobs", "E2E portraits")
	seen := Eval[[]float64](t, b, `window.progressSeen`)
	if len(seen) < 2 || seen[len(seen)-1] != 100 || seen[0] >= 100 {
		t.Errorf("upload progress values %v: want several, rising to 100", seen)
	}
	b.WaitText(t, "#dataset-summary", "0 image(s)") // a started dataset leaves the draft
	b.WaitText(t, "#jobs .job-status", "Pending")

	b.Do(t, chromedp.Reload(), WaitWasm())
	b.WaitText(t, "#jobs", "E2E portraits")
	if st := b.WaitText(t, "#jobs .job-status", ""); st == "Ready" {
		t.Fatal("the job was Ready before the reload settled; the reload did not happen during training")
	}
	b.WaitText(t, "#jobs .job-status", "Ready")
	href := Eval[string](t, b, `document.querySelector('#jobs .job-generate')?.getAttribute('href') ?? ''`)
	if !strings.HasPrefix(href, "/generate?model=") || len(href) < len("/generate?model=")+8 {
		t.Errorf("Ready job links to %q", href)
	}
	b.CheckConsole(t)
}

func TestFinetuneRefuses21ImagesAndExplainsA429(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)
	dir := t.TempDir()
	var paths []string
	for i := range 21 {
		path := filepath.Join(dir, fmt.Sprintf("shot%02d.png", i))
		writePhoto(t, path, 64, 48, uint64(100+i))
		paths = append(paths, path)
	}
	addFiles(t, b, paths)
	b.WaitText(t, "#dataset-summary", "21 image(s)")
	b.WaitText(t, "#checks .check-error", "21 images: BFL accepts at most 20, remove 1.")
	b.WaitText(t, "#start-blocked", "Fix the dataset first")
	if !Eval[bool](t, b, `document.getElementById('start-training').disabled`) {
		t.Error("Start is enabled with 21 images")
	}
	b.Do(t, chromedp.Click(chromedp.CSS(`.thumb[data-name="shot00.png"] button.remove`)))
	b.WaitText(t, "#dataset-summary", "20 image(s)")
	b.WaitTrue(t, `!document.getElementById('start-training').disabled`)
	b.CheckConsole(t)
	b.ClearProblems()

	// A 429 from BFL (too many tasks) is explained, not retried.
	typeInto(t, b, "field-finetune_comment", "Busy [sim:429]")
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	b.WaitText(t, "#start-error", "Too many tasks are running")
	if n := strings.Count(p.Log(), `"path":"/api/v1/finetune"`); n != 1 {
		t.Errorf("the refused submit reached the proxy %d times, want once (never retried)", n)
	}
	b.WaitText(t, "#dataset-summary", "20 image(s)")
	for _, pr := range b.Problems() {
		if !strings.Contains(pr, "status of 429") { // the browser's own log of the refusal
			t.Errorf("console: %s", pr)
		}
	}
}

// zipOf writes a ZIP holding the given files plus the clutter a Mac adds.
func zipOf(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for name, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	for _, junk := range []string{"__MACOSX/set/._a.jpg", "set/.DS_Store"} {
		w, _ := zw.Create(junk)
		w.Write([]byte{0, 1, 2})
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFinetune422LandsOnItsFieldKeepingDatasetAndForm(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)
	photos := threePhotos(t)
	archive := filepath.Join(t.TempDir(), "set.zip")
	zipOf(t, archive, map[string]string{
		"set/a.jpg": photos[0], "set/b.png": photos[1], "set/c.jpg": photos[2], "set/a.txt": photos[3],
	})
	addFiles(t, b, []string{archive})
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	// zipOf writes entries in map order, so the caption may come after
	// every image and pair after the count shows 3.
	b.WaitTrue(t, `document.querySelector('.thumb[data-name="a.jpg"] textarea')?.value === 'a portrait of TOK in a park'`)

	const name = "Shoes [sim:422=iterations]"
	typeInto(t, b, "field-finetune_comment", name)
	typeInto(t, b, "field-iterations", "500")
	saves := Eval[string](t, b, `document.getElementById('draft-status').dataset.saves`)
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	b.WaitTrue(t, `!document.getElementById('field-iterations-error').hidden`)
	msg := b.WaitText(t, "#field-iterations-error", "")
	if msg == "" {
		t.Error("the iterations field shows an empty error")
	}
	b.WaitText(t, "#start-error", "Iterations")
	b.WaitText(t, "#start-error", "kept")
	checkKept := func(when string) {
		t.Helper()
		b.WaitText(t, "#dataset-summary", "3 image(s)")
		if v := Eval[string](t, b, `document.getElementById('field-finetune_comment').value`); v != name {
			t.Errorf("%s: name field = %q", when, v)
		}
		if v := Eval[string](t, b, `document.getElementById('field-iterations').value`); v != "500" {
			t.Errorf("%s: iterations field = %q", when, v)
		}
		if n := Eval[int](t, b, `document.querySelectorAll('#jobs .job').length`); n != 0 {
			t.Errorf("%s: %d jobs listed for a refused request", when, n)
		}
	}
	checkKept("after the 422")
	// A refused upload saves the draft at once rather than after the debounce.
	b.WaitTrue(t, fmt.Sprintf(`+document.getElementById('draft-status').dataset.saves > %s`, saves))

	// The draft is in IndexedDB: a reload brings the dataset and form back.
	b.Do(t, chromedp.Reload(), WaitWasm())
	b.WaitTrue(t, `document.querySelector('#tab-finetune')?.dataset.restored === 'true'`)
	checkKept("after a reload")
	if c := Eval[string](t, b, `document.querySelector('.thumb[data-name="a.jpg"] textarea')?.value ?? ''`); c != "a portrait of TOK in a park" {
		t.Errorf("caption lost in the draft: %q", c)
	}

	// An edit made just before leaving the tab is saved on the way out,
	// not lost with the pending debounce.
	typeInto(t, b, "caption-0", "TOK, edited right before leaving")
	b.Do(t, chromedp.Click(chromedp.ID("nav-models")))
	b.WaitTrue(t, `!document.getElementById('tab-finetune')`)
	b.Do(t, chromedp.Click(chromedp.ID("nav-finetune")))
	b.WaitTrue(t, `document.querySelector('#tab-finetune')?.dataset.restored === 'true'`)
	checkKept("after leaving the tab and coming back")
	if c := Eval[string](t, b, `document.getElementById('caption-0')?.value ?? ''`); c != "TOK, edited right before leaving" {
		t.Errorf("caption edit lost when leaving the tab: %q", c)
	}
}

func TestFinetuneDropAddsImagesAndCaptions(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)
	// A synthetic drop, as a file manager would make it: an image the page
	// draws itself and its caption.
	prevented := Eval[bool](t, b, `(async () => {
		const c = new OffscreenCanvas(320, 240);
		const g = c.getContext('2d');
		g.fillStyle = '#c33'; g.fillRect(0, 0, 320, 240);
		g.fillStyle = '#fff'; g.fillRect(40, 40, 100, 80);
		const png = await c.convertToBlob({type: 'image/png'});
		const dt = new DataTransfer();
		dt.items.add(new File([png], 'dropped.png', {type: 'image/png'}));
		dt.items.add(new File(['TOK by the window'], 'dropped.txt', {type: 'text/plain'}));
		const zone = document.getElementById('dataset-drop');
		zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
		return !zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`)
	if !prevented {
		t.Error("the drop was not handled (the browser would open the file instead)")
	}
	b.WaitText(t, "#dataset-summary", "1 image(s)")
	b.WaitText(t, `.thumb[data-name="dropped.png"] .thumb-sizes`, "320×240")
	b.WaitTrue(t, `document.querySelector('.thumb[data-name="dropped.png"] textarea')?.value === 'TOK by the window'`)
	b.CheckConsole(t)
}

// A training that ends while the user is on another tab is announced there,
// and one left running across a reload that opens on Generate is resumed and
// announced without visiting Finetune.
func TestFinetuneEndIsAnnouncedOnAnyTab(t *testing.T) {
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "8"})
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)
	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	typeInto(t, b, "field-finetune_comment", "Cross tab")
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	b.WaitText(t, "#jobs .job-status", "Pending")
	b.Do(t, chromedp.Click(chromedp.ID("nav-generate")))
	b.WaitTrue(t, `location.pathname === '/generate' && !document.querySelector('#tab-finetune')`)
	b.WaitText(t, "#toasts", `Training "Cross tab": Ready`)
	b.Do(t, chromedp.Click(chromedp.ID("nav-finetune")))
	b.WaitText(t, "#jobs .job-status", "Ready")

	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	typeInto(t, b, "field-finetune_comment", "After reload")
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	b.WaitTrue(t, `[...document.querySelectorAll('#jobs .job-status')].some(e => e.textContent.includes('Pending'))`)
	b.Open(t, p.URL+"/generate")
	b.WaitText(t, "#toasts", `Training "After reload": Ready`)
	if !Eval[bool](t, b, `location.pathname === '/generate' && !document.querySelector('#tab-finetune')`) {
		t.Fatal("the announcement needed the Finetune tab")
	}
	b.CheckConsole(t)
}

// TestFinetuneWithBFLUnreachableSaysNothingWasSent: a live proxy that
// cannot connect to BFL answers the training submit with a 502 it marks as
// never sent. The page must say nothing was sent (safe to retry, nothing
// charged) rather than warn that the submit may have reached BFL, and keep
// the dataset.
func TestFinetuneWithBFLUnreachableSaysNothingWasSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()
	p := StartProxy(t, map[string]string{"BFL_API_KEY": "e2e-key", "BFL_API_URL": closed})
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)
	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	typeInto(t, b, "field-finetune_comment", "Unreachable")
	b.WaitTrue(t, `!document.getElementById('start-training').disabled`)
	b.Do(t, chromedp.Click(chromedp.ID("start-training")))
	msg := b.WaitText(t, "#start-error", "nothing was sent")
	if strings.Contains(msg, "may have reached") {
		t.Errorf("start error %q warns of a submit that never left the proxy", msg)
	}
	// The reference leads whoever runs the proxy to the cause in its log.
	if m := regexp.MustCompile(`Proxy log reference: ([\w-]+)`).FindStringSubmatch(msg); m == nil {
		t.Errorf("start error %q names no proxy log reference", msg)
	} else if !strings.Contains(p.log.String(), `"msg":"upstream unreachable","id":"`+m[1]+`"`) {
		t.Errorf("no warning with id %s in the proxy's log:\n%s", m[1], p.log)
	}
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	for _, pr := range b.Problems() {
		if !strings.Contains(pr, "status of 502") { // the browser's own log of the failed calls
			t.Errorf("console: %s", pr)
		}
	}
}

// Each caption box shows its own image's caption after the images shift:
// a box the user typed in keeps what it shows unless the app sets it, and
// would show (and save on the next keystroke) another image's caption.
func TestFinetuneCaptionsFollowTheirImagesAfterARemoval(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	openFinetune(t, b, p.URL)
	addFiles(t, b, threePhotos(t))
	b.WaitText(t, "#dataset-summary", "3 image(s)")
	b.WaitTrue(t, `document.querySelector('.thumb[data-name="portrait.jpg"] textarea')?.value === 'a portrait of TOK in a park'`)
	typeInto(t, b, "caption-0", "CAPTION-ZERO")
	typeInto(t, b, "caption-1", "CAPTION-ONE")
	second := Eval[string](t, b, `document.querySelectorAll('.thumb')[1].dataset.name`)
	b.Do(t, chromedp.Click(chromedp.CSS(`.thumb:nth-child(1) button.remove`)))
	b.WaitText(t, "#dataset-summary", "2 image(s)")
	// The first box now belongs to the image that was second, with its caption.
	b.WaitTrue(t, fmt.Sprintf(`(() => { const t = document.querySelectorAll('.thumb')[0];
		return t.dataset.name === %q && t.querySelector('textarea').value === 'CAPTION-ONE' })()`, second))
	shown := Eval[string](t, b, `[...document.querySelectorAll('.thumb')].map(e => e.dataset.name + '=' + e.querySelector('textarea').value).join(', ')`)
	if strings.Count(shown, "CAPTION-ONE") != 1 {
		t.Errorf("captions shown after the removal: %s; want CAPTION-ONE on %s only", shown, second)
	}
}
