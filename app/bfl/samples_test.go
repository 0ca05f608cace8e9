package bfl

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
)

// pngData is a real 2x2 PNG, so the signature check sees what a browser sends.
func pngData(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}

// zipData is a real ZIP holding one image and its caption.
func zipData(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string][]byte{"cat.png": pngData(t), "cat.txt": []byte("a TOK cat")} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatalf("zip create %s: %v", name, err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatalf("zip write %s: %v", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("zip close: %v", err)
	}
	return buf.Bytes()
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

// sampleValue is a valid value for f that need not be its default.
func sampleValue(t testing.TB, f Field) any {
	t.Helper()
	switch f.Format {
	case FormatBase64Image:
		return b64(pngData(t))
	case FormatBase64ZIP:
		return b64(zipData(t))
	case FormatURI:
		return "https://hooks.example.com/done"
	case FormatAspectRatio:
		return "4:5"
	}
	if len(f.Enum) > 0 {
		return f.Enum[len(f.Enum)-1]
	}
	switch f.Type {
	case Boolean:
		return true
	case String:
		return "a sample"
	}
	v := 7.0
	if f.Min != nil {
		v = *f.Min
	}
	if f.MultipleOf != 0 {
		v = math.Ceil(v/f.MultipleOf) * f.MultipleOf
	}
	return v
}

// defaultBody holds every default plus a sample for each required field
// without one: what a form submits untouched.
func defaultBody(t testing.TB, e Endpoint) map[string]any {
	t.Helper()
	body := map[string]any{}
	for _, f := range e.Fields {
		switch {
		case f.Default != nil:
			body[f.Name] = f.Default
		case f.Required:
			body[f.Name] = sampleValue(t, f)
		}
	}
	return body
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}
