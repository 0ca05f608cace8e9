package finetuning

import (
	"archive/zip"
	"bytes"
	"testing"
)

// FuzzExtractZIP feeds arbitrary archives to the importer: it must never
// panic, and whatever it returns stays within the limits it was given.
func FuzzExtractZIP(f *testing.F) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{"a.jpg", "a.txt", "__MACOSX/._a.jpg", "dir/.hidden", "dir/b.png"} {
		w, _ := zw.Create(name)
		w.Write([]byte("content of " + name))
	}
	zw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte("not a zip"))
	lim := ZIPLimits{MaxEntries: 8, MaxTotal: 4096}
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := ExtractZIP(data, lim)
		if err != nil {
			if files != nil {
				t.Fatal("files returned with an error")
			}
			return
		}
		if len(files) > lim.MaxEntries {
			t.Fatalf("%d files past the %d limit", len(files), lim.MaxEntries)
		}
		var total int
		for _, file := range files {
			total += len(file.Data)
			if skipEntry(file.Name) || bytes.ContainsAny([]byte(file.Name), "/\\") {
				t.Fatalf("kept %q", file.Name)
			}
		}
		if total > int(lim.MaxTotal) {
			t.Fatalf("%d bytes past the %d limit", total, lim.MaxTotal)
		}
	})
}
