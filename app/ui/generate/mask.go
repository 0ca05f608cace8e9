package generate

import (
	"bytes"
	"image"
	_ "image/jpeg" // decode the sizes of input images
	_ "image/png"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
	_ "golang.org/x/image/webp"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/service/inference"
)

// maskEditor paints the fill endpoint's mask on a canvas laid over the image:
// black keeps, white repaints. The canvas has the image's own pixel size, so
// the exported PNG lines up with the image BFL receives.
type maskEditor struct {
	w, h     int
	painting bool
	painted  bool
	ready    bool // the canvas has been cleared to black for this image
	brush    int
	lastX    float64
	lastY    float64
}

func (m *maskEditor) reset(img []byte) {
	*m = maskEditor{brush: m.brush}
	if m.brush == 0 {
		m.brush = 48
	}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(img)); err == nil {
		m.w, m.h = cfg.Width, cfg.Height
	}
}

func maskCanvas() app.Value { return app.Window().GetElementByID("mask-canvas") }

// prepare fills the canvas black once it is on the page.
func (m *maskEditor) prepare() {
	c := maskCanvas()
	if m.ready || !c.Truthy() {
		return
	}
	g := c.Call("getContext", "2d")
	g.Set("fillStyle", "#000")
	g.Call("fillRect", 0, 0, m.w, m.h)
	m.ready, m.painted = true, false
}

// point maps a pointer event to canvas pixels (the canvas is shown scaled).
func point(e app.Event) (float64, float64) {
	c := maskCanvas()
	sx := c.Get("width").Float() / max(1, c.Get("clientWidth").Float())
	sy := c.Get("height").Float() / max(1, c.Get("clientHeight").Float())
	return e.Get("offsetX").Float() * sx, e.Get("offsetY").Float() * sy
}

func (m *maskEditor) stroke(x, y float64) {
	g := maskCanvas().Call("getContext", "2d")
	g.Set("strokeStyle", "#fff")
	g.Set("lineCap", "round")
	g.Set("lineJoin", "round")
	g.Set("lineWidth", m.brush)
	g.Call("beginPath")
	g.Call("moveTo", m.lastX, m.lastY)
	g.Call("lineTo", x, y)
	g.Call("stroke")
	m.lastX, m.lastY, m.painted = x, y, true
}

func (p *Page) renderMask(fd bfl.Field) app.UI {
	upload := p.renderImageInput(fd)
	if p.inputURLs["image"] == "" || p.mask.w == 0 {
		return app.Div().Body(upload, app.P().Class("hint").Text("Choose the image first to paint the mask over it, or upload a mask."))
	}
	if _, uploaded := p.images["mask"]; uploaded {
		return upload
	}
	m := &p.mask
	return app.Div().Class("mask").Body(
		app.Div().Class("mask-editor").Style("position", "relative").Body(
			app.Img().Src(p.inputURLs["image"]).Alt("Image to repaint").Style("display", "block").Style("width", "100%"),
			app.Canvas().ID("mask-canvas").Width(m.w).Height(m.h).Aria("label", "Mask: paint what to repaint").
				Style("position", "absolute").Style("inset", "0").Style("width", "100%").Style("height", "100%").
				Style("opacity", "0.45").Style("cursor", "crosshair").Style("touch-action", "none").
				On("pointerdown", func(ctx app.Context, e app.Event) {
					m.prepare()
					m.painting = true
					m.lastX, m.lastY = point(e)
					m.stroke(m.lastX, m.lastY)
				}).
				On("pointermove", func(ctx app.Context, e app.Event) {
					if m.painting {
						m.stroke(point(e))
					}
					ctx.PreventUpdate() // drawing needs no re-render; a render per move would stutter
				}).
				On("pointerup", func(ctx app.Context, e app.Event) { m.painting = false }).
				On("pointerleave", func(ctx app.Context, e app.Event) { m.painting = false }),
		),
		app.Div().Class("toolbar").Body(
			app.Label().For("brush-size").Text("Brush"),
			app.Input().ID("brush-size").Type("range").Min(4).Max(256).Value(strconv.Itoa(m.brush)).
				OnInput(func(ctx app.Context, e app.Event) { m.brush, _ = strconv.Atoi(ctx.JSSrc().Get("value").String()) }),
			app.Button().ID("mask-clear").Class("btn small").Text("Clear mask").OnClick(func(app.Context, app.Event) {
				m.ready = false
				m.prepare()
			}),
		),
		app.P().Class("hint").Text("Paint over what should change (white = repaint). Or upload a mask instead:"),
		upload,
	)
}

// attachMask puts the painted mask in the form when the endpoint takes one and
// no mask file was uploaded.
func (p *Page) attachMask(f *inference.Form) error {
	ep := p.currentEndpoint()
	if _, ok := ep.Field("mask"); !ok || !p.mask.painted {
		return nil
	}
	if _, uploaded := f.Images["mask"]; uploaded {
		return nil
	}
	data, err := canvasPNG(maskCanvas())
	if err != nil {
		return err
	}
	f.Images["mask"] = inference.Image{Data: data, MediaType: "image/png"}
	return nil
}
