package finetuning

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// yieldEvery is how many bytes the packers process between calls to the
// yield hook: about 1 MB keeps each uninterrupted stretch of wasm well under
// the 200 ms the page may freeze.
const yieldEvery = 1 << 20

// ErrNotReady is returned when the dataset still has blocking check errors.
var ErrNotReady = errors.New("dataset not ready")

// yieldWriter calls yield after every yieldEvery bytes written through it.
type yieldWriter struct {
	w       io.Writer
	yield   func()
	pending int
}

func (y *yieldWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), yieldEvery-y.pending)
		m, err := y.w.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
		y.pending += n
		if y.pending >= yieldEvery {
			y.pending = 0
			if y.yield != nil {
				y.yield()
			}
		}
	}
	return written, nil
}

// ZIPNames returns the name each image gets inside the archive: only
// [A-Za-z0-9._-], an extension matching the real format, unique ignoring
// case (archives are unpacked on case-insensitive systems too).
func ZIPNames(images []Image) []string {
	out := make([]string, len(images))
	used := map[string]bool{}
	for i, im := range images {
		base := safeStem(stem(im.Name))
		name := base
		for n := 2; used[strings.ToLower(name)]; n++ {
			name = fmt.Sprintf("%s-%d", base, n)
		}
		used[strings.ToLower(name)] = true
		out[i] = name + im.Format.Ext()
	}
	return out
}

func safeStem(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if out := strings.Trim(b.String(), "_"); out != "" {
		return out
	}
	return "image"
}

// WriteZIP writes the dataset as BFL's training archive: images stored, not
// deflated (they are compressed already, and deflate would cost seconds of
// frozen page for a percent or two), each caption as a same-name .txt.
func WriteZIP(w io.Writer, images []Image, yield func()) error {
	zw := zip.NewWriter(&yieldWriter{w: w, yield: yield})
	modified := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // fixed, so the same dataset packs to the same bytes
	for i, name := range ZIPNames(images) {
		im := images[i]
		if err := writeEntry(zw, name, im.Data, modified); err != nil {
			return err
		}
		if c := strings.TrimSpace(im.Caption); c != "" {
			txt := strings.TrimSuffix(name, im.Format.Ext()) + ".txt"
			if err := writeEntry(zw, txt, []byte(c), modified); err != nil {
				return err
			}
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish ZIP: %w", err)
	}
	return nil
}

func writeEntry(zw *zip.Writer, name string, data []byte, modified time.Time) error {
	f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: modified})
	if err != nil {
		return fmt.Errorf("add %s to ZIP: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s to ZIP: %w", name, err)
	}
	return nil
}

// zipSize is an upper bound of the archive's size, so its buffer is
// allocated once (the wasm heap never shrinks, so growth copies cost for good).
func zipSize(images []Image) int {
	// Per entry: local header (30), data descriptor (<=24), central header
	// (46), timestamp extras (2x9), the name twice; rounded up generously.
	const perEntry = 160
	n := 22 // end of central directory
	for i, name := range ZIPNames(images) {
		n += 2*(perEntry+2*len(name)) + len(images[i].Data) + len(images[i].Caption)
	}
	return n
}

// Envelope builds the finetune request body: fields is the JSON object of
// every other field (from Request.Fields) and the ZIP goes in file_data as
// base64. It is written by hand around a streaming encoder into a buffer of
// the exact final size, because json.Marshal of a tens-of-MB string is ~7x
// slower and copies it several times.
func Envelope(fields map[string]any, zipData []byte, yield func()) ([]byte, error) {
	if _, ok := fields["file_data"]; ok {
		return nil, errors.New("envelope: fields must not hold file_data")
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("envelope: encode fields: %w", err)
	}
	const head = `{"file_data":"`
	tail := `"}`
	if len(rest) > 2 { // not "{}"
		tail = `",` + string(rest[1:])
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(head)+base64.StdEncoding.EncodedLen(len(zipData))+len(tail)))
	buf.WriteString(head)
	enc := base64.NewEncoder(base64.StdEncoding, buf)
	// Feeding the encoder in yieldEvery chunks gives the page a breath between them.
	for off := 0; off < len(zipData); off += yieldEvery {
		end := min(off+yieldEvery, len(zipData))
		if _, err := enc.Write(zipData[off:end]); err != nil {
			return nil, fmt.Errorf("envelope: base64: %w", err)
		}
		if yield != nil {
			yield()
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("envelope: base64: %w", err)
	}
	buf.WriteString(tail)
	return buf.Bytes(), nil
}

// Pack turns a dataset with no blocking checks and the request fields into
// the body to POST. The ZIP buffer is released before returning so that only
// the envelope stays alive.
func Pack(d *Dataset, trigger string, fields map[string]any, yield func()) ([]byte, error) {
	if blocking := Blocking(d.Checks(trigger)); len(blocking) > 0 {
		return nil, fmt.Errorf("%s: %w", blocking[0].Message, ErrNotReady)
	}
	zbuf := bytes.NewBuffer(make([]byte, 0, zipSize(d.Images)))
	if err := WriteZIP(zbuf, d.Images, yield); err != nil {
		return nil, err
	}
	return Envelope(fields, zbuf.Bytes(), yield)
}
