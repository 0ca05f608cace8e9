package sim

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"strings"
	"testing"
	"time"
)

func TestSizeForRatio(t *testing.T) {
	for _, r := range [][2]int{{16, 9}, {9, 16}, {21, 9}, {9, 21}, {1, 1}, {4, 3}, {3, 2}, {32, 18}, {1000, 999}, {2000, 1999}, {1999, 1000}, {4294967295, 4294967294}} {
		w, h := sizeForRatio(r[0], r[1])
		want := float64(w) * float64(r[1]) / float64(r[0])
		if d := want - float64(h); d > 1 || d < -1 {
			t.Errorf("%d:%d gave %dx%d", r[0], r[1], w, h)
		}
		if mp := float64(w*h) / 1e6; mp < 0.9 || mp > 1.1 {
			t.Errorf("%d:%d gave %dx%d, %.2f MP", r[0], r[1], w, h, mp)
		}
	}
	// Ratios whose whole-factor scaling lands near a megapixel keep it, and
	// so their exact shape.
	for r, want := range map[[2]int][2]int{{16, 9}: {1328, 747}, {21, 9}: {1526, 654}, {9, 21}: {654, 1526},
		{1, 1}: {1000, 1000}, {4, 3}: {1156, 867}, {3, 2}: {1224, 816}, {1000, 999}: {1000, 999}} {
		if w, h := sizeForRatio(r[0], r[1]); w != want[0] || h != want[1] {
			t.Errorf("%d:%d gave %dx%d, want %dx%d", r[0], r[1], w, h, want[0], want[1])
		}
	}
}

func TestCapPixels(t *testing.T) {
	if w, h := capPixels(640, 480); w != 640 || h != 480 {
		t.Errorf("small size changed: %dx%d", w, h)
	}
	w, h := capPixels(8000, 4000)
	if w*h > maxInputPixels || w != 2*h {
		t.Errorf("8000x4000 capped to %dx%d", w, h)
	}
}

// whitePixels counts pure white pixels in the band where the prompt is
// written: the text colour, which the gradient and shapes are unlikely to hit.
func whitePixels(t *testing.T, spec imageSpec) int {
	t.Helper()
	data, err := render(spec)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	n := 0
	for y := b.Max.Y * 2 / 3; y < b.Max.Y; y++ {
		for x := range b.Max.X {
			if r, g, bl, _ := img.At(x, y).RGBA(); r == 0xffff && g == 0xffff && bl == 0xffff {
				n++
			}
		}
	}
	return n
}

// The prompt is drawn on the image: the more text, the more glyph pixels,
// and a long prompt wraps onto several lines instead of running off.
func TestPromptIsVisible(t *testing.T) {
	base := imageSpec{seed: 1, width: 640, height: 480, format: "png"}
	short, long := base, base
	short.prompt = "fox"
	long.prompt = "a red fox jumping over a sleeping dog in the snow at dawn"
	none := base
	none.prompt = "   "
	if s, l := whitePixels(t, short), whitePixels(t, long); s == 0 || l < 4*s {
		t.Fatalf("glyph pixels: %q %d, %q %d", short.prompt, s, long.prompt, l)
	}
	if whitePixels(t, none) == 0 {
		t.Fatal("an empty prompt drew nothing; it should say so")
	}
}

func TestWrap(t *testing.T) {
	lines := wrap("one two three four five six seven eight", 10, 3)
	if len(lines) != 3 || !strings.HasSuffix(lines[2], "...") {
		t.Fatalf("%q", lines)
	}
	for _, l := range lines {
		if len(l) > 10 {
			t.Fatalf("line %q longer than 10", l)
		}
	}
	if got := wrap("ünïcode\ttab", 40, 2); len(got) != 1 || got[0] != "?n?code tab" {
		t.Fatalf("%q", got)
	}
	if got := wrap(strings.Repeat("x", 25), 10, 5); len(got) != 3 || got[0] != strings.Repeat("x", 10) || got[2] != "xxxxx" {
		t.Fatalf("%q", got)
	}
}

func TestRenderSizesAndFormats(t *testing.T) {
	for _, spec := range []imageSpec{
		{prompt: "p", seed: 3, width: 1, height: 1, format: "png"},
		{prompt: "p", seed: 3, width: 1440, height: 256, format: "jpeg"},
		{prompt: "p", seed: -9, width: 257, height: 1021, format: "png"},
	} {
		data, err := render(spec)
		if err != nil {
			t.Fatal(err)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil || format != spec.format || cfg.Width != spec.width || cfg.Height != spec.height {
			t.Fatalf("%+v: %s %dx%d %v", spec, format, cfg.Width, cfg.Height, err)
		}
	}
}

// BenchmarkRender measures drawing and encoding an ultra-sized (about 1 MP)
// sample, and reports it as a ratio to encoding an already drawn picture in
// the same run: the drawing must stay a small part of the cost (the target is
// well under 100 ms per sample in total).
func BenchmarkRender(b *testing.B) {
	w, h := sizeForRatio(16, 9)
	for _, format := range []string{"png", "jpeg"} {
		b.Run(fmt.Sprintf("%s_%dx%d", format, w, h), func(b *testing.B) {
			spec := imageSpec{prompt: "TOK on a sofa, golden hour", seed: 42, width: w, height: h, format: format}
			drawn := draw(spec)
			var renderTime, encodeTime time.Duration
			for i := 0; b.Loop(); i++ {
				spec.seed = int64(i)
				start := time.Now()
				if _, err := render(spec); err != nil {
					b.Fatal(err)
				}
				renderTime += time.Since(start)
				start = time.Now()
				if _, err := encode(drawn, format); err != nil {
					b.Fatal(err)
				}
				encodeTime += time.Since(start)
			}
			b.ReportMetric(renderTime.Seconds()*1000/float64(b.N), "ms/sample")
			b.ReportMetric(float64(renderTime)/float64(encodeTime), "x_encode_only")
		})
	}
}
