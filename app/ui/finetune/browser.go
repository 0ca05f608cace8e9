package finetune

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/service/finetuning"
	"github.com/fluxforge/fluxforge/app/ui/await"
)

// Browser work goes through go-app's Value, which is real in the wasm build
// and inert on the server, so this file needs no build tags. Every function
// here blocks on promises: call them from ctx.Async, never from a handler.

// maxFileBytes refuses files no photo reaches, before copying them anywhere.
const maxFileBytes = 64 << 20

// maxPixels is BFL's useful resolution: it downscales anything bigger itself.
const maxPixels = 1_000_000

// jpegQuality keeps re-encoded JPEG and WebP visually lossless for training.
const jpegQuality = 0.92

// blobBytes copies a Blob's bytes into Go in one bulk copy.
func blobBytes(blob app.Value) ([]byte, error) {
	buf, err := await.Promise(blob.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("read file: %w", err)
	}
	u8 := app.Window().Get("Uint8Array").New(buf)
	out := make([]byte, u8.Get("length").Int())
	app.CopyBytesToGo(out, u8)
	return out, nil
}

// newBlob wraps Go bytes in a JS Blob of the given type.
func newBlob(data []byte, mime string) app.Value {
	u8 := app.Window().Get("Uint8Array").New(len(data))
	app.CopyBytesToJS(u8, data)
	// Array.of, not SetIndex: go-app converts arguments of Call, but its
	// SetIndex passes a wrapped Value straight to syscall/js, which panics.
	arr := app.Window().Get("Array").Call("of", u8)
	return app.Window().Get("Blob").New(arr, map[string]any{"type": mime})
}

// objectURL makes a thumbnail URL for image bytes; revoke it when done.
func objectURL(data []byte, mime string) string {
	if app.IsServer {
		return ""
	}
	return app.Window().Get("URL").Call("createObjectURL", newBlob(data, mime)).String()
}

func revokeURL(u string) {
	if u != "" && !app.IsServer {
		app.Window().Get("URL").Call("revokeObjectURL", u)
	}
}

// digest hashes with WebCrypto, off the wasm thread, so 20 large photos do
// not freeze the page; without a secure context it falls back to Go.
func digest(blob app.Value, data []byte) (string, error) {
	subtle := app.Window().Get("crypto").Get("subtle")
	if !subtle.Truthy() {
		if data == nil {
			var err error
			if data, err = blobBytes(blob); err != nil {
				return "", err
			}
		}
		return finetuning.Digest(data), nil
	}
	buf, err := await.Promise(blob.Call("arrayBuffer"))
	if err != nil {
		return "", fmt.Errorf("read file: %w", err)
	}
	sum, err := await.Promise(subtle.Call("digest", "SHA-256", buf))
	if err != nil {
		return "", fmt.Errorf("hash file: %w", err)
	}
	u8 := app.Window().Get("Uint8Array").New(sum)
	raw := make([]byte, 32)
	app.CopyBytesToGo(raw, u8)
	return fmt.Sprintf("%x", raw), nil
}

// prepare turns a file (a JS Blob) into a dataset image: the format from its
// first bytes, its digest, and, over one megapixel, a downscaled copy in the
// same format made by the browser's own codecs (createImageBitmap and a
// canvas), so only the downscaled bytes ever enter the wasm heap.
func prepare(name string, blob app.Value) (finetuning.Image, error) {
	size := int64(blob.Get("size").Float())
	if size > maxFileBytes {
		return finetuning.Image{}, fmt.Errorf("%s is %d MB; photos over %d MB are refused", name, size>>20, maxFileBytes>>20)
	}
	head, err := blobBytes(blob.Call("slice", 0, 16))
	if err != nil {
		return finetuning.Image{}, fmt.Errorf("%s: %w", name, err)
	}
	im := finetuning.Image{Name: name, Format: finetuning.Sniff(head), OriginalSize: size}
	if im.SHA256, err = digest(blob, nil); err != nil {
		return finetuning.Image{}, fmt.Errorf("%s: %w", name, err)
	}
	if !im.Format.Allowed() {
		// Kept so the checks can name it; it is never decoded or sent.
		im.Data = head
		return im, nil
	}
	bitmap, err := await.Promise(app.Window().Call("createImageBitmap", blob))
	if err != nil {
		return finetuning.Image{}, fmt.Errorf("%s could not be decoded as an image: %w", name, err)
	}
	defer bitmap.Call("close")
	im.OriginalW, im.OriginalH = bitmap.Get("width").Int(), bitmap.Get("height").Int()
	im.Width, im.Height = fitPixels(im.OriginalW, im.OriginalH, maxPixels)
	if im.Width == im.OriginalW && im.Height == im.OriginalH {
		if im.Data, err = blobBytes(blob); err != nil {
			return finetuning.Image{}, fmt.Errorf("%s: %w", name, err)
		}
		return im, nil
	}
	// One decode, off the main thread, then one drawImage at the target
	// size. Profiled in Chromium over 10 photos of 12 MP: asking
	// createImageBitmap to resize as well decodes again on the main thread
	// and cost more main-thread time in total (1.8 s against 1.2 s).
	out, err := encodeScaled(bitmap, im.Width, im.Height, im.Format.MIME())
	if err != nil {
		return finetuning.Image{}, fmt.Errorf("%s: downscale: %w", name, err)
	}
	if got := finetuning.Sniff(out); got != im.Format {
		return finetuning.Image{}, fmt.Errorf("%s: the browser re-encoded it as %q instead of %q", name, got, im.Format)
	}
	im.Data = out
	return im, nil
}

// encodeScaled draws the bitmap at w x h and encodes it as mime, on an
// OffscreenCanvas where there is one (its convertToBlob runs off the main
// thread), else on a detached <canvas>.
func encodeScaled(bitmap app.Value, w, h int, mime string) ([]byte, error) {
	win := app.Window()
	var canvas app.Value
	offscreen := win.Get("OffscreenCanvas").Truthy()
	if offscreen {
		canvas = win.Get("OffscreenCanvas").New(w, h)
	} else {
		canvas = win.Get("document").Call("createElement", "canvas")
		canvas.Set("width", w)
		canvas.Set("height", h)
	}
	g := canvas.Call("getContext", "2d")
	g.Set("imageSmoothingQuality", "high")
	g.Call("drawImage", bitmap, 0, 0, w, h)
	var blob app.Value
	var err error
	if offscreen {
		blob, err = await.Promise(canvas.Call("convertToBlob", map[string]any{"type": mime, "quality": jpegQuality}))
	} else {
		blob, err = canvasToBlob(canvas, mime)
	}
	if err != nil {
		return nil, err
	}
	if !blob.Truthy() {
		return nil, errors.New("the browser could not encode the image")
	}
	return blobBytes(blob)
}

func canvasToBlob(canvas app.Value, mime string) (app.Value, error) {
	done := make(chan app.Value, 1)
	cb := app.FuncOf(func(_ app.Value, a []app.Value) any {
		done <- a[0]
		return nil
	})
	defer cb.Release()
	canvas.Call("toBlob", cb, mime, jpegQuality)
	return <-done, nil
}

// fitPixels scales w x h down, keeping the aspect ratio, to at most max pixels.
func fitPixels(w, h, max int) (int, int) {
	if w <= 0 || h <= 0 || w*h <= max {
		return w, h
	}
	s := math.Sqrt(float64(max) / float64(w*h))
	nw, nh := int(float64(w)*s), int(float64(h)*s)
	for nw*nh > max { // float rounding can leave a few pixels over
		if nw >= nh {
			nw--
		} else {
			nh--
		}
	}
	return max1(nw), max1(nh)
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// droppedFile is a file found in a drop or a picker, with its path inside a
// dropped folder (for messages) and the JS File itself.
type droppedFile struct {
	name string
	blob app.Value
}

// fileList copies a FileList into a slice while the event is live.
func fileList(files app.Value) []droppedFile {
	n := files.Get("length").Int()
	out := make([]droppedFile, 0, n)
	for i := range n {
		f := files.Call("item", i)
		out = append(out, droppedFile{name: f.Get("name").String(), blob: f})
	}
	return out
}

// dropEntries takes the FileSystemEntry of each dropped item. It must run in
// the drop handler itself: the DataTransfer is emptied once the event ends.
func dropEntries(dt app.Value) []app.Value {
	items := dt.Get("items")
	if !items.Truthy() {
		return nil
	}
	var out []app.Value
	for i := range items.Get("length").Int() {
		it := items.Index(i)
		if it.Get("kind").String() != "file" || !it.Get("webkitGetAsEntry").Truthy() {
			continue
		}
		if e := it.Call("webkitGetAsEntry"); e.Truthy() {
			out = append(out, e)
		}
	}
	return out
}

// walkEntries reads files from dropped entries, descending into folders.
func walkEntries(entries []app.Value) ([]droppedFile, error) {
	var out []droppedFile
	for _, e := range entries {
		if e.Get("isFile").Bool() {
			f, err := entryFile(e)
			if err != nil {
				return nil, err
			}
			out = append(out, droppedFile{name: e.Get("name").String(), blob: f})
			continue
		}
		if !e.Get("isDirectory").Bool() || strings.HasPrefix(e.Get("name").String(), ".") {
			continue
		}
		children, err := readDir(e.Call("createReader"))
		if err != nil {
			return nil, err
		}
		files, err := walkEntries(children)
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	return out, nil
}

func entryFile(e app.Value) (app.Value, error) {
	f, err := await.Callbacks(func(ok, ko app.Value) { e.Call("file", ok, ko) })
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.Get("fullPath").String(), err)
	}
	return f, nil
}

// readDir reads a folder; readEntries returns at most ~100 entries a call,
// so it is called until it returns none.
func readDir(reader app.Value) ([]app.Value, error) {
	var out []app.Value
	for {
		batch, err := await.Callbacks(func(ok, ko app.Value) { reader.Call("readEntries", ok, ko) })
		if err != nil {
			return nil, fmt.Errorf("read folder: %w", err)
		}
		n := batch.Get("length").Int()
		if n == 0 {
			return out, nil
		}
		for i := range n {
			out = append(out, batch.Index(i))
		}
	}
}
