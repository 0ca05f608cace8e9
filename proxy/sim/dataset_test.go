package sim

import (
	"archive/zip"
	"bytes"
	"fmt"
	"path"
	"strings"
	"testing"
)

func TestCheckDataset(t *testing.T) {
	png, jpg := pngBytes(t, 40, 30), jpegBytes(t, 30, 40)
	// 22 images under 11 names: each counts, whatever its name shares.
	sameStems, sameStemData := []string{}, map[string][]byte{}
	for i := range 11 {
		for _, ext := range []string{".png", ".PNG"} {
			name := fmt.Sprintf("img%02d%s", i, ext)
			sameStems, sameStemData[name] = append(sameStems, name), png
		}
	}
	cases := []struct {
		name  string
		files []string
		data  map[string][]byte
		err   string // "" = accepted
	}{
		{"images and captions", []string{"a.png", "a.txt", "b.jpg", "b.txt"},
			map[string][]byte{"a.png": png, "a.txt": []byte("TOK"), "b.jpg": jpg, "b.txt": []byte("TOK smiling")}, ""},
		{"content decides, not the name", []string{"photo.jpeg", "scan.PNG"},
			map[string][]byte{"photo.jpeg": png, "scan.PNG": jpg}, ""},
		{"folders and macOS metadata are ignored", []string{"set/", "set/a.png", "__MACOSX/set/._a.png", "set/.DS_Store"},
			map[string][]byte{"set/a.png": png, "__MACOSX/set/._a.png": []byte("junk"), "set/.DS_Store": []byte("junk")}, ""},
		{"caption in a folder pairs by path", []string{"set/a.png", "set/a.txt"},
			map[string][]byte{"set/a.png": png, "set/a.txt": []byte("x")}, ""},
		{"caption must sit next to its image", []string{"set/a.png", "a.txt"},
			map[string][]byte{"set/a.png": png, "a.txt": []byte("x")}, "a.txt has no image"},
		{"a text file posing as an image", []string{"a.png", "b.webp"},
			map[string][]byte{"a.png": png, "b.webp": []byte("hello")}, "b.webp is not"},
		{"other file types", []string{"a.png", "notes.md"},
			map[string][]byte{"a.png": png, "notes.md": []byte("# notes")}, "notes.md is not"},
		{"images sharing a name are each counted", sameStems, sameStemData, "holds 22 images: the limit is 20"},
		{"a caption pairs with every image of its name", []string{"a.png", "a.jpg", "a.txt"},
			map[string][]byte{"a.png": png, "a.jpg": jpg, "a.txt": []byte("TOK")}, ""},
		{"only captions", []string{"a.txt"}, map[string][]byte{"a.txt": []byte("x")}, "no images"},
		{"empty ZIP", nil, nil, "no images"},
		{"caption not UTF-8", []string{"a.png", "a.txt"},
			map[string][]byte{"a.png": png, "a.txt": {0xff, 0xfe, 0x00}}, "not UTF-8"},
		{"caption too large", []string{"a.png", "a.txt"},
			map[string][]byte{"a.png": png, "a.txt": []byte(strings.Repeat("x", maxCaptionBytes+1))}, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkDataset(zipOf(t, c.files, c.data))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("err %v, want one containing %q", err, c.err)
			}
		})
	}
	if err := checkDataset([]byte("PK\x03\x04 not really")); err == nil || !strings.Contains(err.Error(), "ZIP") {
		t.Fatalf("broken ZIP: %v", err)
	}
}

// FuzzCheckDataset feeds arbitrary bytes, and mutations of real training
// ZIPs, to the dataset check: it must never panic, and whatever it accepts
// must really be a ZIP holding 1 to 20 entries that are not captions.
func FuzzCheckDataset(f *testing.F) {
	png, jpg := pngBytes(f, 8, 8), jpegBytes(f, 8, 8)
	f.Add(zipOf(f, []string{"a.png", "a.txt"}, map[string][]byte{"a.png": png, "a.txt": []byte("TOK")}))
	f.Add(zipOf(f, []string{"x/b.jpg", "__MACOSX/x/._b.jpg"}, map[string][]byte{"x/b.jpg": jpg, "__MACOSX/x/._b.jpg": {1}}))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkDataset(data); err != nil {
			return
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("accepted a ZIP that does not open: %v", err)
		}
		n := 0
		for _, file := range zr.File {
			if !file.FileInfo().IsDir() && !isMacMetadata(file.Name) && !strings.EqualFold(path.Ext(file.Name), ".txt") {
				n++
			}
		}
		if n < minImages || n > maxImages {
			t.Fatalf("accepted a ZIP with %d images", n)
		}
	})
}
