package sim

import (
	"archive/zip"
	"bytes"
	"fmt"
	"image"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// BFL's dataset rules, and bounds that keep a hostile ZIP from exhausting memory.
const (
	minImages        = 1
	maxImages        = 20
	maxCaptionBytes  = 64 << 10
	maxUnzippedBytes = 1 << 30
)

// checkDataset applies BFL's training-set rules to a ZIP: 1 to 20 images
// that really are JPEG, PNG or WebP (by content, whatever their names say),
// and optional UTF-8 .txt captions each named after an image. Folders and
// the metadata macOS adds to ZIPs are ignored. The error names the file.
func checkDataset(data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("not a readable ZIP archive: %w", err)
	}
	var total uint64
	// Images are counted by entry: a.png and a.PNG are two images, though
	// one name for captions, which pair by path without extension.
	images := 0
	stems := map[string]bool{}
	var captions []string
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || isMacMetadata(f.Name) {
			continue
		}
		total += f.UncompressedSize64
		if total > maxUnzippedBytes {
			return fmt.Errorf("the ZIP unpacks to more than %d MB", maxUnzippedBytes>>20)
		}
		stem := strings.TrimSuffix(f.Name, path.Ext(f.Name))
		if strings.EqualFold(path.Ext(f.Name), ".txt") {
			if err := checkCaption(f); err != nil {
				return err
			}
			captions = append(captions, f.Name)
			continue
		}
		if err := checkImage(f); err != nil {
			return err
		}
		images++
		stems[stem] = true
	}
	switch {
	case images < minImages:
		return fmt.Errorf("the ZIP holds no images: it needs %d to %d JPG, PNG or WebP images", minImages, maxImages)
	case images > maxImages:
		return fmt.Errorf("the ZIP holds %d images: the limit is %d", images, maxImages)
	}
	for _, c := range captions {
		if !stems[strings.TrimSuffix(c, path.Ext(c))] {
			return fmt.Errorf("caption %s has no image of the same name (e.g. %s.jpg)", c,
				strings.TrimSuffix(c, path.Ext(c)))
		}
	}
	return nil
}

func isMacMetadata(name string) bool {
	base := path.Base(name)
	return strings.HasPrefix(name, "__MACOSX/") || strings.HasPrefix(base, "._") || base == ".DS_Store"
}

// checkImage reads only the image header, which is enough to know the format.
func checkImage(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: cannot be read from the ZIP: %w", f.Name, err)
	}
	defer rc.Close()
	cfg, format, err := image.DecodeConfig(rc)
	if err != nil {
		return fmt.Errorf("%s is not a JPG, PNG or WebP image (only those and .txt captions may be in the ZIP)", f.Name)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return fmt.Errorf("%s: %s image has no pixels", f.Name, format)
	}
	return nil
}

func checkCaption(f *zip.File) error {
	if f.UncompressedSize64 > maxCaptionBytes {
		return fmt.Errorf("caption %s is larger than %d KB", f.Name, maxCaptionBytes>>10)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("caption %s: cannot be read from the ZIP: %w", f.Name, err)
	}
	defer rc.Close()
	text, err := io.ReadAll(io.LimitReader(rc, maxCaptionBytes+1))
	if err != nil {
		return fmt.Errorf("caption %s: cannot be read from the ZIP: %w", f.Name, err)
	}
	if len(text) > maxCaptionBytes {
		return fmt.Errorf("caption %s is larger than %d KB", f.Name, maxCaptionBytes>>10)
	}
	if !utf8.Valid(text) {
		return fmt.Errorf("caption %s is not UTF-8 text", f.Name)
	}
	return nil
}
