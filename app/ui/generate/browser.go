package generate

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/ui/await"
)

// Browser work goes through go-app's Value, real in the wasm build and inert
// on the server; only waiting on a promise (package await) needs build tags.
// Functions that wait on promises must run in ctx.Async, never in an event
// handler.

// Size limits checked before a file is copied into memory: input images far
// beyond what BFL accepts, and gallery archives.
const (
	maxInputBytes   = 32 << 20
	maxArchiveBytes = 1 << 30
)

// readFile copies a File's bytes into Go in one bulk copy.
func readFile(file app.Value, limit int) ([]byte, string, error) {
	if !file.Truthy() {
		return nil, "", errors.New("no file chosen")
	}
	if n := file.Get("size").Int(); n > limit {
		return nil, "", fmt.Errorf("%s is %d MB; this takes files up to %d MB", file.Get("name").String(), n>>20, limit>>20)
	}
	buf, err := await.Promise(file.Call("arrayBuffer"))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", file.Get("name").String(), err)
	}
	u8 := app.Window().Get("Uint8Array").New(buf)
	out := make([]byte, u8.Get("length").Int())
	app.CopyBytesToGo(out, u8)
	return out, file.Get("type").String(), nil
}

// objectURL makes a blob: URL for bytes, so images show without base64 copies in the DOM.
func objectURL(data []byte, mediaType string) string {
	if app.IsServer || len(data) == 0 {
		return ""
	}
	u8 := app.Window().Get("Uint8Array").New(len(data))
	app.CopyBytesToJS(u8, data)
	arr := app.Window().Get("Array").New(u8)
	blob := app.Window().Get("Blob").New(arr, map[string]any{"type": mediaType})
	return app.Window().Get("URL").Call("createObjectURL", blob).String()
}

func revokeURL(u string) {
	if u != "" && !app.IsServer {
		app.Window().Get("URL").Call("revokeObjectURL", u)
	}
}

// download saves bytes under a file name through a temporary link.
func download(data []byte, name, mediaType string) {
	u := objectURL(data, mediaType)
	if u == "" {
		return
	}
	doc := app.Window().Get("document")
	a := doc.Call("createElement", "a")
	a.Set("href", u)
	a.Set("download", name)
	a.Get("style").Set("display", "none")
	doc.Get("body").Call("appendChild", a)
	a.Call("click")
	a.Call("remove")
	// The browser reads the URL after click returns; revoking at once can cancel the save.
	var later app.Func
	later = app.FuncOf(func(app.Value, []app.Value) any {
		revokeURL(u)
		later.Release()
		return nil
	})
	app.Window().Call("setTimeout", later, 60000)
}

// canvasPNG exports a canvas as PNG bytes.
func canvasPNG(canvas app.Value) ([]byte, error) {
	if !canvas.Truthy() {
		return nil, errors.New("the mask canvas is not on the page")
	}
	url := canvas.Call("toDataURL", "image/png").String()
	_, b64, ok := strings.Cut(url, ",")
	if !ok {
		return nil, errors.New("the mask canvas did not export")
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("decode the mask: %w", err)
	}
	return data, nil
}
