// Command icons draws the app's icons into web/: PNGs at 192 and 512 pixels,
// a maskable 512 PNG with the mark inside the safe zone, and the same mark as
// SVG. The PNGs are committed; run this again only to change the design:
//
//	go run ./build/sitegen/icons -out web
package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
)

// bolt is the mark, a lightning bolt, in unit coordinates.
func bolt() [][2]float64 {
	return [][2]float64{{0.58, 0.10}, {0.25, 0.57}, {0.47, 0.57}, {0.41, 0.90}, {0.75, 0.43}, {0.53, 0.43}}
}

// The palette: the app's dark background and the bolt's gradient.
func palette() (background, top, bottom color.RGBA) {
	return color.RGBA{0x11, 0x13, 0x18, 0xff}, color.RGBA{0xff, 0xc0, 0x4d, 0xff}, color.RGBA{0xff, 0x5a, 0x36, 0xff}
}

func main() {
	out := flag.String("out", "web", "directory the icons are written to")
	flag.Parse()
	icons := []struct {
		name     string
		size     int
		maskable bool
	}{{"icon-192.png", 192, false}, {"icon-512.png", 512, false}, {"icon-maskable.png", 512, true}}
	for _, ic := range icons {
		var buf bytes.Buffer
		if err := png.Encode(&buf, draw(ic.size, ic.maskable)); err != nil {
			fail(err)
		}
		if err := os.WriteFile(filepath.Join(*out, ic.name), buf.Bytes(), 0o644); err != nil {
			fail(err)
		}
	}
	if err := os.WriteFile(filepath.Join(*out, "icon.svg"), []byte(svg()), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "icons:", err)
	os.Exit(1)
}

// draw renders the icon with 4x4 supersampling for smooth edges. A maskable
// icon fills the square and keeps the mark within the central 80% circle.
func draw(size int, maskable bool) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	scale, radius := 1.0, 0.22
	if maskable {
		scale, radius = 0.72, 0
	}
	const ss = 4
	for y := range size {
		for x := range size {
			var r, g, b, a float64
			for sy := range ss {
				for sx := range ss {
					u := (float64(x) + (float64(sx)+0.5)/ss) / float64(size)
					v := (float64(y) + (float64(sy)+0.5)/ss) / float64(size)
					c, ok := sample(u, v, scale, radius)
					if !ok {
						continue
					}
					r, g, b, a = r+float64(c.R), g+float64(c.G), b+float64(c.B), a+255
				}
			}
			if a == 0 {
				continue
			}
			// RGBA is premultiplied: the colour sums already carry the coverage.
			n := float64(ss * ss)
			img.SetRGBA(x, y, color.RGBA{uint8(r / n), uint8(g / n), uint8(b / n), uint8(a / n)})
		}
	}
	return img
}

// sample is the colour at (u, v), false outside the rounded square.
func sample(u, v, scale, radius float64) (color.RGBA, bool) {
	if !inRoundedSquare(u, v, radius) {
		return color.RGBA{}, false
	}
	background, top, bottom := palette()
	bu, bv := 0.5+(u-0.5)/scale, 0.5+(v-0.5)/scale
	if inPolygon(bu, bv, bolt()) {
		return lerp(top, bottom, (bv-0.1)/0.8), true
	}
	return background, true
}

func inRoundedSquare(u, v, r float64) bool {
	if r == 0 {
		return true
	}
	cx, cy := clamp(u, r, 1-r), clamp(v, r, 1-r)
	return (u-cx)*(u-cx)+(v-cy)*(v-cy) <= r*r
}

func clamp(x, lo, hi float64) float64 { return max(lo, min(hi, x)) }

// inPolygon is the even-odd rule.
func inPolygon(x, y float64, pts [][2]float64) bool {
	in := false
	for i, j := 0, len(pts)-1; i < len(pts); j, i = i, i+1 {
		xi, yi, xj, yj := pts[i][0], pts[i][1], pts[j][0], pts[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

func lerp(a, b color.RGBA, t float64) color.RGBA {
	t = clamp(t, 0, 1)
	mix := func(x, y uint8) uint8 { return uint8(float64(x) + (float64(y)-float64(x))*t) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
}

func hex(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func svg() string {
	background, top, bottom := palette()
	var pts []string
	for _, p := range bolt() {
		pts = append(pts, fmt.Sprintf("%g,%g", p[0]*100, p[1]*100))
	}
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<defs><linearGradient id="g" x1="0" y1="0.1" x2="0" y2="0.9"><stop offset="0" stop-color="%s"/><stop offset="1" stop-color="%s"/></linearGradient></defs>
<rect width="100" height="100" rx="22" fill="%s"/>
<polygon points="%s" fill="url(#g)"/>
</svg>
`, hex(top), hex(bottom), hex(background), strings.Join(pts, " "))
}
