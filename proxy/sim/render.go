package sim

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Glyph cell of basicfont.Face7x13, the only font in the module set.
const (
	glyphW = 7
	glyphH = 13
)

// render draws the picture for spec and encodes it. Everything random comes
// from a generator seeded by the prompt and the seed, and both encoders are
// deterministic, so equal specs give byte-identical files. It paints with
// gradients and flat shapes only: about a megapixel takes milliseconds.
func render(spec imageSpec) ([]byte, error) {
	return encode(draw(spec), spec.format)
}

// draw paints the picture for spec.
func draw(spec imageSpec) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, spec.width, spec.height))
	h := fnv.New64a()
	_, _ = h.Write([]byte(spec.prompt))
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(spec.seed)))

	paintGradient(img, randomColor(rng), randomColor(rng), rng.Float64()*2*math.Pi)
	for range 4 + rng.IntN(5) {
		c := randomColor(rng)
		c.A = uint8(90 + rng.IntN(120))
		if rng.IntN(2) == 0 {
			r := (0.05 + 0.25*rng.Float64()) * float64(min(spec.width, spec.height))
			paintCircle(img, rng.Float64()*float64(spec.width), rng.Float64()*float64(spec.height), r, c)
		} else {
			x0, y0 := rng.IntN(spec.width), rng.IntN(spec.height)
			paintRect(img, image.Rect(x0, y0, x0+1+rng.IntN(spec.width/2+1), y0+1+rng.IntN(spec.height/2+1)), c)
		}
	}
	prompt := spec.prompt
	if strings.TrimSpace(prompt) == "" {
		prompt = "(no prompt)"
	}
	scale := max(1, spec.width/400)
	margin := 2 * scale
	writeText(img, []string{"FluxForge simulator  seed " + strconv.FormatInt(spec.seed, 10)},
		max(1, scale/2), margin, margin)
	cols := max(1, (spec.width-2*margin)/(glyphW*scale))
	maxLines := max(1, min(6, spec.height/3/(glyphH*scale)))
	lines := wrap(prompt, cols, maxLines)
	writeText(img, lines, scale, margin, spec.height-margin-len(lines)*glyphH*scale)
	return img
}

// encode writes img as "png" (fastest compression: the samples are
// throwaway) or else as JPEG.
func encode(img *image.RGBA, format string) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	if format == "png" {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s %dx%d: %w", format, img.Rect.Dx(), img.Rect.Dy(), err)
	}
	return buf.Bytes(), nil
}

func randomColor(rng *rand.Rand) color.RGBA {
	return color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
}

// paintGradient fills img with a linear blend from a to b along angle,
// through a 256-entry table so each pixel costs an add and a copy.
func paintGradient(img *image.RGBA, a, b color.RGBA, angle float64) {
	var lut [256][4]uint8
	for i := range lut {
		t := float64(i) / 255
		lut[i] = [4]uint8{mix(a.R, b.R, t), mix(a.G, b.G, t), mix(a.B, b.B, t), 255}
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	dx, dy := math.Cos(angle), math.Sin(angle)
	span := math.Abs(dx)*float64(w) + math.Abs(dy)*float64(h)
	stepX := dx / span * 255
	for y := range h {
		t := ((0-float64(w)/2)*dx+(float64(y)-float64(h)/2)*dy)/span*255 + 127.5
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := 0; x < 4*w; x += 4 {
			i := min(max(int(t), 0), 255)
			copy(row[x:x+4], lut[i][:])
			t += stepX
		}
	}
}

func mix(a, b uint8, t float64) uint8 {
	return uint8(math.Round(float64(a)*(1-t) + float64(b)*t))
}

// blend puts c over the pixel at offset i with c's alpha.
func blend(pix []uint8, i int, c color.RGBA) {
	a := uint32(c.A)
	pix[i] = uint8((uint32(c.R)*a + uint32(pix[i])*(255-a)) / 255)
	pix[i+1] = uint8((uint32(c.G)*a + uint32(pix[i+1])*(255-a)) / 255)
	pix[i+2] = uint8((uint32(c.B)*a + uint32(pix[i+2])*(255-a)) / 255)
}

func paintRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			blend(img.Pix, img.PixOffset(x, y), c)
		}
	}
}

// paintCircle fills a disc row by row: one square root per row, not per pixel.
func paintCircle(img *image.RGBA, cx, cy, r float64, c color.RGBA) {
	y0 := max(int(cy-r), 0)
	y1 := min(int(cy+r)+1, img.Rect.Dy())
	for y := y0; y < y1; y++ {
		d := float64(y) + 0.5 - cy
		half := math.Sqrt(max(r*r-d*d, 0))
		x0 := max(int(cx-half), 0)
		x1 := min(int(cx+half), img.Rect.Dx())
		for x := x0; x < x1; x++ {
			blend(img.Pix, img.PixOffset(x, y), c)
		}
	}
}

// wrap breaks text into at most maxLines lines of at most cols characters,
// ending with "..." when it does not fit. Characters the font lacks become
// '?', so what is measured is what is drawn.
func wrap(text string, cols, maxLines int) []string {
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			if r == '\n' || r == '\t' {
				return ' '
			}
			return '?'
		}
		return r
	}, text)
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		for len(word) > cols { // a word longer than a line is cut
			if line != "" {
				lines, line = append(lines, line), ""
			}
			lines, word = append(lines, word[:cols]), word[cols:]
		}
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= cols:
			line += " " + word
		default:
			lines, line = append(lines, line), word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	if len(lines) > maxLines {
		lines = lines[:maxLines]
		last := lines[maxLines-1]
		if len(last)+3 > cols {
			last = last[:max(0, cols-3)]
		}
		lines[maxLines-1] = last + "..."
	}
	return lines
}

// writeText draws lines in white, scaled up from the 7x13 font with nearest
// neighbour, over a darkened band so the prompt is readable on any colours.
func writeText(img *image.RGBA, lines []string, scale, x0, y0 int) {
	cols := 0
	for _, l := range lines {
		cols = max(cols, len(l))
	}
	mask := image.NewAlpha(image.Rect(0, 0, cols*glyphW, len(lines)*glyphH))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: basicfont.Face7x13}
	for i, l := range lines {
		d.Dot = fixed.P(0, i*glyphH+basicfont.Face7x13.Ascent)
		d.DrawString(l)
	}
	pad := scale
	band := image.Rect(x0-pad, y0-pad, x0+cols*glyphW*scale+pad, y0+len(lines)*glyphH*scale+pad)
	paintRect(img, band, color.RGBA{0, 0, 0, 150})
	b := mask.Bounds()
	for my := b.Min.Y; my < b.Max.Y; my++ {
		for mx := b.Min.X; mx < b.Max.X; mx++ {
			if mask.AlphaAt(mx, my).A < 128 {
				continue
			}
			paintRect(img, image.Rect(x0+mx*scale, y0+my*scale, x0+(mx+1)*scale, y0+(my+1)*scale),
				color.RGBA{255, 255, 255, 255})
		}
	}
}
