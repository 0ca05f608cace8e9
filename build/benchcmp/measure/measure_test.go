package measure

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"testing"
	"time"
)

func TestSummarizeNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(d)
	if s.N != 100 || s.Min != time.Millisecond || s.Max != 100*time.Millisecond {
		t.Fatalf("N/Min/Max = %d/%v/%v", s.N, s.Min, s.Max)
	}
	if s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond {
		t.Fatalf("P50/P99 = %v/%v, want 50ms/99ms", s.P50, s.P99)
	}
	if s.Mean != 50500*time.Microsecond {
		t.Fatalf("Mean = %v", s.Mean)
	}
	if d[0] != 100*time.Millisecond {
		t.Fatal("Summarize reordered its input")
	}
	one := Summarize([]time.Duration{7})
	if one.P50 != 7 || one.P99 != 7 {
		t.Fatalf("single value: %+v", one)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("empty input should give a zero summary")
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 1<<20 || m.HWM != 2<<20 || m.Threads != 7 {
		t.Fatalf("got %+v", m)
	}
	if _, err := parseStatus([]byte("Name:\tkthread\n")); err == nil {
		t.Fatal("a status without memory lines should be an error")
	}
}

func TestReadMemOwnProcess(t *testing.T) {
	before, err := ReadMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.RSS <= 0 || before.HWM < before.RSS || before.Threads < 1 {
		t.Fatalf("implausible figures %+v", before)
	}
	s := SamplePeak(os.Getpid(), time.Millisecond)
	grow := make([]byte, 64<<20)
	for i := range grow { // touch every page so it is resident
		grow[i] = 1
	}
	time.Sleep(20 * time.Millisecond)
	peak, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if peak < before.RSS+48<<20 {
		t.Fatalf("peak %d did not see a 64 MB allocation over %d", peak, before.RSS)
	}
	if grow[len(grow)-1] != 1 {
		t.Fatal("unreachable: keeps the allocation alive")
	}
	if _, err := ReadMem(-1); err == nil {
		t.Fatal("a missing pid should be an error")
	}
}

func TestDatasetBody(t *testing.T) {
	d := DatasetForBody(3<<20, 4)
	body, err := d.Body()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(body); n < 3<<20*95/100 || n > 3<<20*105/100 {
		t.Fatalf("body is %d bytes, want within 5%% of %d", n, 3<<20)
	}
	var fields struct {
		FileData     string `json:"file_data"`
		Mode         string `json:"mode"`
		FinetuneType string `json:"finetune_type"`
		Iterations   int    `json:"iterations"`
		Comment      string `json:"finetune_comment"`
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if fields.Mode != "character" || fields.Iterations != 100 || fields.Comment == "" {
		t.Fatalf("fields %+v", fields)
	}
	raw, err := base64.StdEncoding.DecodeString(fields.FileData)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 8 {
		t.Fatalf("zip has %d entries, want 4 images + 4 captions", len(zr.File))
	}
	var first []byte
	for _, f := range zr.File {
		if f.Name[len(f.Name)-4:] != ".png" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if img.Bounds().Dx() != d.Side || img.Bounds().Dy() != d.Side {
			t.Fatalf("%s is %v, want %dx%d", f.Name, img.Bounds(), d.Side, d.Side)
		}
		if first != nil && bytes.Equal(first, b) {
			t.Fatal("images should differ")
		}
		first = b
	}
}

func TestDatasetReaderMatchesBody(t *testing.T) {
	d := Dataset{Images: 2, Side: 64, Seed: 9}
	want, err := d.Body()
	if err != nil {
		t.Fatal(err)
	}
	r := d.Reader()
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("streamed body differs from the buffered one")
	}
}
