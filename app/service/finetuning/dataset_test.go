package finetuning

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// Minimal file heads: Sniff needs only the signatures.
var (
	jpegHead = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F'}
	pngHead  = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	webpHead = []byte("RIFF\x24\x00\x00\x00WEBPVP8 ")
	gifHead  = []byte("GIF89a\x01\x00\x01\x00")
)

// img builds a distinct image of the given format; n makes its bytes unique.
func img(name string, head []byte, n int) Image {
	data := append(append([]byte(nil), head...), []byte(fmt.Sprintf("pixels-%d", n))...)
	return Image{Name: name, Format: Sniff(data), Data: data, OriginalSize: int64(len(data)) * 10,
		OriginalW: 2000, OriginalH: 1500, Width: 1000, Height: 750}
}

func TestSniffJudgesContentNotName(t *testing.T) {
	cases := []struct {
		data []byte
		want Format
		ok   bool
	}{
		{jpegHead, FormatJPEG, true},
		{pngHead, FormatPNG, true},
		{webpHead, FormatWebP, true},
		{gifHead, FormatGIF, false},
		{[]byte("hello, I am text"), FormatUnknown, false},
		{[]byte("RIFF\x00\x00\x00\x00WAVEfmt "), FormatUnknown, false},
		{nil, FormatUnknown, false},
	}
	for _, c := range cases {
		if got := Sniff(c.data); got != c.want || got.Allowed() != c.ok {
			t.Errorf("Sniff(%q) = %q (allowed %v), want %q (allowed %v)", c.data, got, got.Allowed(), c.want, c.ok)
		}
	}
}

func TestCaptionsPairByStemWhicheverArrivesFirst(t *testing.T) {
	var d Dataset
	d.AddCaption("photos/cat.TXT", "  a cat on a sofa\n")
	d.AddImage(img("photos/cat.jpg", jpegHead, 1))
	d.AddImage(img("dog.png", pngHead, 2))
	d.AddCaption("dog.txt", "a dog")
	d.AddCaption("Dog.txt", "other case stem stays apart")
	d.AddCaption("bird.txt", "no bird image")

	if got := d.Images[0]; got.Name != "cat.jpg" || got.Caption != "a cat on a sofa" {
		t.Errorf("cat = %q %q, want cat.jpg paired with its trimmed caption", got.Name, got.Caption)
	}
	if got := d.Images[1].Caption; got != "a dog" {
		t.Errorf("dog caption = %q", got)
	}
	if len(d.Orphans) != 2 || d.Orphans["bird.txt"] != "no bird image" || d.Orphans["Dog.txt"] == "" {
		t.Errorf("orphans = %v, want bird.txt and Dog.txt", d.Orphans)
	}
	if !d.Remove("bird.txt") || d.Remove("bird.txt") {
		t.Error("Remove of an orphan caption should succeed once")
	}
}

func TestAddImageNeverReplacesSameName(t *testing.T) {
	var d Dataset
	a := d.AddImage(img("x.jpg", jpegHead, 1))
	b := d.AddImage(img("X.jpg", jpegHead, 2))
	c := d.AddImage(img("x.jpg", jpegHead, 3))
	if a != "x.jpg" || b != "X-2.jpg" || c != "x-3.jpg" || len(d.Images) != 3 {
		t.Fatalf("names %q %q %q, %d images", a, b, c, len(d.Images))
	}
	if !d.Remove("X-2.jpg") || len(d.Images) != 2 || d.Images[1].Name != "x-3.jpg" {
		t.Fatalf("after remove: %+v", d.Images)
	}
}

func TestBulkTriggerAndClear(t *testing.T) {
	var d Dataset
	d.AddImage(img("a.jpg", jpegHead, 1))
	d.AddImage(img("b.jpg", jpegHead, 2))
	d.AddImage(img("c.jpg", jpegHead, 3))
	d.AddImage(img("d.jpg", jpegHead, 4))
	d.SetCaption("a.jpg", "photo of TOK smiling")
	d.SetCaption("b.jpg", "a TOKEN on a table")
	d.SetCaption("c.jpg", "portrait in the rain")
	if n := d.InsertTrigger("TOK"); n != 2 {
		t.Fatalf("InsertTrigger changed %d captions, want 2", n)
	}
	want := []string{"photo of TOK smiling", "TOK, a TOKEN on a table", "TOK, portrait in the rain", ""}
	for i, w := range want {
		if d.Images[i].Caption != w {
			t.Errorf("caption %d = %q, want %q", i, d.Images[i].Caption, w)
		}
	}
	if n := d.InsertTrigger("TOK"); n != 0 {
		t.Errorf("second InsertTrigger changed %d", n)
	}
	d.AddCaption("zzz.txt", "orphan")
	d.ClearCaptions()
	for _, im := range d.Images {
		if im.Caption != "" {
			t.Errorf("%s keeps caption %q", im.Name, im.Caption)
		}
	}
	if len(d.Orphans) != 0 {
		t.Errorf("orphans survive clear: %v", d.Orphans)
	}
}

func TestHasWord(t *testing.T) {
	for _, c := range []struct {
		text, word string
		want       bool
	}{
		{"TOK", "TOK", true}, {"a TOK.", "TOK", true}, {"TOKEN", "TOK", false},
		{"xTOK TOK", "TOK", true}, {"my_TOK", "TOK", false}, {"", "TOK", false}, {"TOK", "", false},
	} {
		if got := HasWord(c.text, c.word); got != c.want {
			t.Errorf("HasWord(%q, %q) = %v", c.text, c.word, got)
		}
	}
}

func checkWith(t *testing.T, checks []Check, level Level, fragment string) Check {
	t.Helper()
	for _, c := range checks {
		if c.Level == level && strings.Contains(c.Message, fragment) {
			return c
		}
	}
	t.Fatalf("no %s check mentioning %q in %+v", level, fragment, checks)
	return Check{}
}

func TestChecks(t *testing.T) {
	var empty Dataset
	checkWith(t, empty.Checks("TOK"), LevelError, "at least one image")

	var few Dataset
	few.AddImage(img("a.jpg", jpegHead, 1))
	few.AddImage(img("b.png", pngHead, 2))
	few.AddImage(img("c.webp", webpHead, 3))
	checks := few.Checks("TOK")
	checkWith(t, checks, LevelWarning, "Only 3 images")
	if len(Blocking(checks)) != 0 {
		t.Errorf("3 valid images should not block: %+v", checks)
	}

	var many Dataset
	for i := range 21 {
		many.AddImage(img(fmt.Sprintf("p%02d.jpg", i), jpegHead, i))
	}
	c := checkWith(t, many.Checks("TOK"), LevelError, "21 images")
	if !strings.Contains(c.Message, "at most 20") || !strings.Contains(c.Message, "remove 1") {
		t.Errorf("21-image message not actionable: %q", c.Message)
	}
	many.Remove("p00.jpg")
	for _, c := range many.Checks("TOK") {
		if c.Level == LevelError {
			t.Errorf("20 images should pass, got %+v", c)
		}
	}

	var mixed Dataset
	mixed.AddImage(img("real.jpg", jpegHead, 1))
	mixed.AddImage(img("anim.jpg", gifHead, 2))               // a GIF named .jpg
	mixed.AddImage(img("notes.png", []byte("plain text"), 3)) // not an image at all
	dup := img("copy.jpg", jpegHead, 1)                       // same bytes as real.jpg
	mixed.AddImage(dup)
	mixed.SetCaption("real.jpg", "a portrait")
	mixed.SetCaption("copy.jpg", "TOK in a hat")
	mixed.AddCaption("lonely.txt", "nothing pairs with me")
	checks = mixed.Checks("TOK")
	f := checkWith(t, checks, LevelError, "Not a JPG, PNG or WebP")
	if strings.Join(f.Files, ",") != "anim.jpg,notes.png" {
		t.Errorf("format check files = %v", f.Files)
	}
	dc := checkWith(t, checks, LevelError, "Exact duplicates")
	if strings.Join(dc.Files, ",") != "real.jpg,copy.jpg" {
		t.Errorf("duplicate files = %v", dc.Files)
	}
	tc := checkWith(t, checks, LevelWarning, `trigger word "TOK"`)
	if strings.Join(tc.Files, ",") != "real.jpg" {
		t.Errorf("trigger check files = %v", tc.Files)
	}
	oc := checkWith(t, checks, LevelWarning, "lonely.txt")
	if len(oc.Files) != 1 {
		t.Errorf("orphan files = %v", oc.Files)
	}
	if checks[0].Level != LevelError || checks[len(checks)-1].Level != LevelWarning {
		t.Errorf("errors must come first: %+v", checks)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	var d Dataset
	d.AddImage(img("a.jpg", jpegHead, 1))
	d.AddCaption("o.txt", "x")
	c := d.Clone()
	d.SetCaption("a.jpg", "changed")
	d.Remove("o.txt")
	if c.Images[0].Caption != "" || c.Orphans["o.txt"] != "x" || !bytes.Equal(c.Images[0].Data, d.Images[0].Data) {
		t.Errorf("clone changed with its source: %+v", c)
	}
}
