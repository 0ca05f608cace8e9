package finetuning

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ZIPLimits bound what an imported archive may unpack to, so a small
// malicious ZIP cannot exhaust the tab's memory.
type ZIPLimits struct {
	MaxEntries int   // files kept (images and captions)
	MaxTotal   int64 // uncompressed bytes, all kept files together
}

// DefaultZIPLimits allow a generous dataset (20 photos of up to ~20 MB each,
// plus captions and stray files) and nothing bigger.
var DefaultZIPLimits = ZIPLimits{MaxEntries: 200, MaxTotal: 512 << 20}

// ErrZIPTooLarge is returned when an archive unpacks past its limits.
var ErrZIPTooLarge = errors.New("archive unpacks to more than allowed")

// File is one named file taken from a drop, a picker or an archive.
type File struct {
	Name string
	Data []byte
}

// ExtractZIP returns the files of a ZIP that may belong to a dataset: every
// regular file except macOS resource forks (__MACOSX/) and hidden files
// (names starting with a dot). Names lose their directories, since BFL pairs
// captions by base name only. Declared sizes are not trusted: reading stops
// once the real bytes pass the limit.
func ExtractZIP(data []byte, lim ZIPLimits) ([]File, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("read ZIP: %w", err)
	}
	var out []File
	var total int64
	for _, f := range zr.File {
		name := strings.ReplaceAll(f.Name, "\\", "/")
		if f.FileInfo().IsDir() || skipEntry(name) {
			continue
		}
		if len(out) >= lim.MaxEntries {
			return nil, fmt.Errorf("ZIP has more than %d files: %w", lim.MaxEntries, ErrZIPTooLarge)
		}
		if f.UncompressedSize64 > uint64(lim.MaxTotal-total) {
			return nil, fmt.Errorf("ZIP entry %s is %d bytes, over the %d MB limit: %w",
				name, f.UncompressedSize64, lim.MaxTotal>>20, ErrZIPTooLarge)
		}
		b, err := readEntry(f, lim.MaxTotal-total)
		if err != nil {
			return nil, fmt.Errorf("ZIP entry %s: %w", name, err)
		}
		total += int64(len(b))
		out = append(out, File{Name: path.Base(name), Data: b})
	}
	return out, nil
}

func skipEntry(name string) bool {
	for _, part := range strings.Split(name, "/") {
		if part == "__MACOSX" || strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

func readEntry(f *zip.File, budget int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, budget+1))
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	if int64(len(b)) > budget {
		return nil, fmt.Errorf("unpacks past the size limit: %w", ErrZIPTooLarge)
	}
	return b, nil
}
