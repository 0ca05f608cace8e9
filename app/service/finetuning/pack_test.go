package finetuning

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func buildZIP(t *testing.T, files map[string][]byte, method uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractZIPKeepsDatasetFilesOnly(t *testing.T) {
	data := buildZIP(t, map[string][]byte{
		"set/cat.jpg":            jpegHead,
		"set/cat.txt":            []byte("a cat"),
		"set/sub/dog.PNG":        pngHead,
		"__MACOSX/set/._cat.jpg": []byte("resource fork"),
		"set/.DS_Store":          []byte("finder"),
		".hidden/x.jpg":          jpegHead,
		"set/empty/":             nil,
	}, zip.Deflate)
	files, err := ExtractZIP(data, DefaultZIPLimits)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Name] = string(f.Data)
	}
	if len(got) != 3 || got["cat.txt"] != "a cat" || got["cat.jpg"] != string(jpegHead) || got["dog.PNG"] != string(pngHead) {
		t.Fatalf("extracted %v", got)
	}
}

func TestExtractZIPRefusesBombs(t *testing.T) {
	// 64 MiB of zeros deflates to ~64 KB: the classic bomb shape.
	bomb := buildZIP(t, map[string][]byte{"zeros.jpg": make([]byte, 64<<20)}, zip.Deflate)
	if len(bomb) > 1<<20 {
		t.Fatalf("test bomb is %d bytes, not a bomb", len(bomb))
	}
	_, err := ExtractZIP(bomb, ZIPLimits{MaxEntries: 10, MaxTotal: 8 << 20})
	if !errors.Is(err, ErrZIPTooLarge) {
		t.Fatalf("bomb: err = %v, want ErrZIPTooLarge", err)
	}

	many := map[string][]byte{}
	for i := range 11 {
		many[strings.Repeat("a", i+1)+".txt"] = []byte("x")
	}
	_, err = ExtractZIP(buildZIP(t, many, zip.Store), ZIPLimits{MaxEntries: 10, MaxTotal: 1 << 20})
	if !errors.Is(err, ErrZIPTooLarge) {
		t.Fatalf("11 entries: err = %v, want ErrZIPTooLarge", err)
	}

	// A header that under-declares its size must not slip past the budget.
	lying := lieAboutSize(t, bytes.Repeat([]byte{7}, 4<<20))
	_, err = ExtractZIP(lying, ZIPLimits{MaxEntries: 10, MaxTotal: 1 << 20})
	if err == nil {
		t.Fatal("lying header accepted")
	}

	if _, err := ExtractZIP([]byte("not a zip"), DefaultZIPLimits); err == nil || !strings.Contains(err.Error(), "read ZIP") {
		t.Fatalf("garbage: err = %v", err)
	}
}

// lieAboutSize writes a raw deflated entry whose headers claim 10 bytes.
func lieAboutSize(t *testing.T, content []byte) []byte {
	t.Helper()
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	fw.Write(content)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "big.jpg", Method: zip.Deflate,
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: 10, CRC32: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	return buf.Bytes()
}

func TestZIPNamesAreSafeUniqueAndMatchFormat(t *testing.T) {
	images := []Image{
		{Name: "Holiday photo.JPG", Format: FormatJPEG},
		{Name: "holiday_photo.jpeg", Format: FormatJPEG},
		{Name: "../../etc/passwd.png", Format: FormatPNG},
		{Name: "really-a-png.jpg", Format: FormatPNG},
		{Name: "ü.webp", Format: FormatWebP},
	}
	got := strings.Join(ZIPNames(images), " ")
	want := "Holiday_photo.jpg holiday_photo-2.jpg passwd.png really-a-png.png image.webp"
	if got != want {
		t.Fatalf("ZIPNames = %s\nwant       %s", got, want)
	}
}

func randomImage(name string, head []byte, size int, seed uint64) Image {
	r := rand.New(rand.NewPCG(seed, seed))
	data := append([]byte(nil), head...)
	for len(data) < size {
		data = append(data, byte(r.Uint32()))
	}
	return Image{Name: name, Format: Sniff(data), Data: data}
}

func TestPackRoundTrip(t *testing.T) {
	var d Dataset
	d.AddImage(randomImage("a.jpg", jpegHead, 1_500_000, 1))
	d.AddImage(randomImage("b.png", pngHead, 900_000, 2))
	d.AddImage(randomImage("c.webp", webpHead, 700_000, 3))
	d.SetCaption("a.jpg", "TOK on a beach")
	d.SetCaption("c.webp", "TOK in \"quotes\"\nand a newline")
	fields := map[string]any{"finetune_comment": "Beach <set> & \"more\"", "mode": "character", "iterations": int64(400)}

	yields := 0
	body, err := Pack(&d, "TOK", fields, func() { yields++ })
	if err != nil {
		t.Fatal(err)
	}
	// 3.1 MB of ZIP: 2 yields while zipping (one per full MiB written) and 3
	// while encoding (one per MiB chunk of input).
	if yields != 5 {
		t.Errorf("yield called %d times for %d bytes", yields, len(body))
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("envelope is not JSON: %v", err)
	}
	for k, v := range map[string]any{"finetune_comment": fields["finetune_comment"], "mode": "character", "iterations": 400.0} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != 4 {
		t.Errorf("envelope keys = %d, want 4", len(got))
	}
	raw, err := base64.StdEncoding.DecodeString(got["file_data"].(string))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"a.jpg": d.Images[0].Data, "a.txt": []byte("TOK on a beach"),
		"b.png":  d.Images[1].Data,
		"c.webp": d.Images[2].Data, "c.txt": []byte("TOK in \"quotes\"\nand a newline"),
	}
	if len(zr.File) != len(want) {
		t.Fatalf("ZIP has %d entries, want %d", len(zr.File), len(want))
	}
	for _, f := range zr.File {
		if f.Method != zip.Store {
			t.Errorf("%s method %d, want Store", f.Name, f.Method)
		}
		rc, _ := f.Open()
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, want[f.Name]) {
			t.Errorf("%s: content differs (err %v)", f.Name, err)
		}
	}

	// The hand-built envelope must equal what encoding/json would produce.
	ref := map[string]any{"file_data": base64.StdEncoding.EncodeToString(raw)}
	for k, v := range fields {
		ref[k] = v
	}
	var a, b any
	refBody, _ := json.Marshal(ref)
	json.Unmarshal(refBody, &a)
	json.Unmarshal(body, &b)
	if !jsonEqual(a, b) {
		t.Error("envelope differs from json.Marshal of the same request")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestEnvelopeEdges(t *testing.T) {
	body, err := Envelope(map[string]any{}, []byte("PK"), nil)
	if err != nil || string(body) != `{"file_data":"UEs="}` {
		t.Fatalf("empty fields: %s %v", body, err)
	}
	if _, err := Envelope(map[string]any{"file_data": "x"}, nil, nil); err == nil {
		t.Fatal("a second file_data was accepted")
	}
	if cap(body) != len(body) {
		t.Errorf("buffer not pre-sized: len %d cap %d", len(body), cap(body))
	}
}

func TestPackRefusesBlockedDataset(t *testing.T) {
	var d Dataset
	for i := range 21 {
		d.AddImage(img(strings.Repeat("x", i+1)+".jpg", jpegHead, i))
	}
	_, err := Pack(&d, "TOK", map[string]any{}, nil)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "21 images") {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteZIPIsDeterministic(t *testing.T) {
	images := []Image{randomImage("a.jpg", jpegHead, 5000, 9)}
	var x, y bytes.Buffer
	if err := WriteZIP(&x, images, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteZIP(&y, images, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.Bytes(), y.Bytes()) {
		t.Error("same dataset packed to different bytes")
	}
	if size := zipSize(images); size < x.Len() {
		t.Errorf("zipSize %d under real size %d", size, x.Len())
	}
}
