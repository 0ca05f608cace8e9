package sim

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // input images may be JPEG,
	_ "image/png"  // PNG
	"math"

	"github.com/fluxforge/fluxforge/app/bfl"
	_ "golang.org/x/image/webp" // or WebP, as BFL accepts
)

const (
	// ratioPixels is the area of an aspect-ratio image: about one megapixel
	// keeps rendering cheap while the shape is exactly the one asked for.
	ratioPixels = 1_000_000
	// ratioSlack is how far from ratioPixels, as a fraction, an exact
	// whole-factor size may land; past it the shape is rounded instead.
	ratioSlack = 0.05
	// maxInputPixels caps outputs sized from an input image.
	maxInputPixels = 4_000_000
	defaultSide    = 1024
)

// imageSize decides the picture's size: width and height where the endpoint
// takes them, the aspect ratio at about a megapixel for ultra, else the size
// of the input image (fill, depth, canny). It also sums the input megapixels.
func imageSize(r request) (w, h int, inputMP *float64, issue *bfl.ValidationIssue) {
	var inputW, inputH int
	var pixels float64
	for _, name := range []string{"image", "control_image", "image_prompt"} {
		if !r.has(name) {
			continue
		}
		cfg, err := decodeImageConfig(r, name)
		if err != nil {
			bad := valueError(name, "could not read the image: "+err.Error())
			return 0, 0, nil, &bad
		}
		if cfg.Width <= 0 || cfg.Height <= 0 {
			// A JPEG header may say 0 rows. Every other size comes from
			// validated fields and is at least 1, so this keeps an empty
			// picture from ever reaching the renderer, which cannot draw one.
			bad := valueError(name, fmt.Sprintf("the image has no pixels (%dx%d)", cfg.Width, cfg.Height))
			return 0, 0, nil, &bad
		}
		pixels += float64(cfg.Width * cfg.Height)
		if inputW == 0 && name != "image_prompt" {
			inputW, inputH = cfg.Width, cfg.Height
		}
	}
	if pixels > 0 {
		mp := round2(pixels / 1e6)
		inputMP = &mp
	}
	_, hasWidth := r.ep.Field("width")
	_, hasRatio := r.ep.Field("aspect_ratio")
	switch {
	case hasWidth:
		w, h = int(r.integer("width")), int(r.integer("height"))
	case hasRatio:
		a, b, err := bfl.ParseAspectRatio(r.str("aspect_ratio"))
		if err != nil {
			bad := valueError("aspect_ratio", err.Error())
			return 0, 0, nil, &bad
		}
		w, h = sizeForRatio(a, b)
	case inputW > 0:
		w, h = capPixels(inputW, inputH)
	default:
		w, h = defaultSide, defaultSide
	}
	return w, h, inputMP, nil
}

func decodeImageConfig(r request, field string) (image.Config, error) {
	data, err := r.file(field)
	if err != nil {
		return image.Config{}, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	return cfg, err
}

// sizeForRatio scales the reduced ratio a:b by a whole factor so the shape is
// exact. Where no whole factor lands near ratioPixels (2000:1999 is 4 MP at
// the smallest, 1999:1000 is 2 MP) the shape is rounded instead.
func sizeForRatio(a, b int) (int, int) {
	g := gcd(a, b)
	a, b = a/g, b/g
	k := math.Round(math.Sqrt(ratioPixels / (float64(a) * float64(b))))
	if area := k * k * float64(a) * float64(b); math.Abs(area/ratioPixels-1) <= ratioSlack {
		return a * int(k), b * int(k)
	}
	w := math.Round(math.Sqrt(ratioPixels * float64(a) / float64(b)))
	return int(w), max(1, int(math.Round(w*float64(b)/float64(a))))
}

// capPixels shrinks a size above maxInputPixels, keeping its shape.
func capPixels(w, h int) (int, int) {
	area := float64(w) * float64(h)
	if area <= maxInputPixels {
		return w, h
	}
	f := math.Sqrt(maxInputPixels / area)
	return max(1, int(float64(w)*f)), max(1, int(float64(h)*f))
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
