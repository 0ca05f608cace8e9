package gallery

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func seed(v int64) *int64 { return &v }

// fill stores three records of two models, one with an input image and one failed.
func fill(t *testing.T, g *Gallery) {
	t.Helper()
	ctx := testCtx(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := []Record{
		{ID: "t1", Endpoint: "flux-pro-1.1-ultra-finetuned", ModelID: "m1", ModelName: "Ada", Prompt: "ADA at sea", Seed: seed(7),
			Params: map[string]any{"aspect_ratio": "16:9", "finetune_strength": 1.2}, Status: bfl.StatusReady, Created: base},
		{ID: "t2", Endpoint: "flux-pro-1.0-fill-finetuned", ModelID: "m2", ModelName: "Bottle", Prompt: "label", Seed: seed(8),
			Params: map[string]any{"steps": 50.0}, Status: bfl.StatusReady, Created: base.Add(time.Minute)},
		{ID: "t3", Endpoint: "flux-pro-1.1-ultra-finetuned", ModelID: "m1", ModelName: "Ada", Prompt: "x", Seed: seed(9),
			Status: bfl.StatusContentModerated, Reason: "The image was moderated.", Created: base.Add(2 * time.Minute)},
	}
	for i, r := range recs {
		if r.ID == "t2" {
			if err := g.SaveInput(ctx, &r, "image", []byte("input-png"), "image/png"); err != nil {
				t.Fatal(err)
			}
		}
		if r.Status == bfl.StatusReady {
			var err error
			if r, err = g.SaveImage(ctx, r, []byte{byte(i), 1, 2, 3}, "image/jpeg"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := g.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

func recIDs(rs []Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestListNewestFirstAndFilter(t *testing.T) {
	ctx := testCtx(t)
	g := New(core.NewMemoryStorage())
	fill(t, g)
	all, err := g.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := recIDs(all); !slices.Equal(got, []string{"t3", "t2", "t1"}) {
		t.Fatalf("order %v", got)
	}
	m1, _ := g.List(ctx, "m1")
	if got := recIDs(m1); !slices.Equal(got, []string{"t3", "t1"}) {
		t.Fatalf("filter m1: %v", got)
	}
	data, mt, err := g.Image(ctx, all[2])
	if err != nil || mt != "image/jpeg" || !bytes.Equal(data, []byte{0, 1, 2, 3}) {
		t.Fatalf("image of t1: %v %q %v", data, mt, err)
	}
	if _, _, err := g.Image(ctx, all[0]); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("a moderated record has no image: %v", err)
	}
}

func TestDeleteRemovesRecordAndBlobs(t *testing.T) {
	ctx := testCtx(t)
	store := core.NewMemoryStorage()
	g := New(store)
	fill(t, g)
	if err := g.Delete(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Get(ctx, "t2"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("record still there: %v", err)
	}
	for _, k := range []string{ImageKey("t2"), InputKey("t2", "image")} {
		if _, _, err := store.GetBlob(ctx, k); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("blob %s still there: %v", k, err)
		}
	}
	if err := g.Delete(ctx, "t2"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("deleting twice should say not found: %v", err)
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{ModelName: "Ada Lovelace/v2", ModelID: "x", Seed: seed(42), MediaType: "image/jpeg"}, "Ada-Lovelace-v2-42.jpg"},
		{Record{ModelID: "0b7e", Seed: seed(1), MediaType: "image/png"}, "0b7e-1.png"},
		{Record{ModelName: "../..", MediaType: "image/webp; q=1"}, "image-noseed.webp"},
	} {
		if got := tc.r.FileName(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	src := New(core.NewMemoryStorage())
	fill(t, src)
	var buf bytes.Buffer
	n, err := src.Export(ctx, &buf, time.Now())
	if err != nil || n != 3 {
		t.Fatalf("export: %d %v", n, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	if want := []string{"images/t1.jpg", "images/t2.jpg", "inputs/t2-1.png", "manifest.json"}; !slices.Equal(names, want) {
		t.Fatalf("entries %v, want %v", names, want)
	}

	dstStore := core.NewMemoryStorage()
	dst := New(dstStore)
	res, err := dst.Import(ctx, buf.Bytes())
	if err != nil || res != (ImportResult{Added: 3}) {
		t.Fatalf("import: %+v %v", res, err)
	}
	got, _ := dst.List(ctx, "")
	want, _ := src.List(ctx, "")
	if !slices.EqualFunc(got, want, func(a, b Record) bool {
		return a.ID == b.ID && a.Prompt == b.Prompt && *a.Seed == *b.Seed && a.Image == b.Image && a.Reason == b.Reason &&
			a.Created.Equal(b.Created) && len(a.Params) == len(b.Params)
	}) {
		t.Fatalf("imported records differ:\n%+v\n%+v", got, want)
	}
	img, mt, err := dst.Input(ctx, got[1], "image")
	if err != nil || string(img) != "input-png" || mt != "image/png" {
		t.Fatalf("input image: %q %q %v", img, mt, err)
	}
	again, err := dst.Import(ctx, buf.Bytes())
	if err != nil || again != (ImportResult{Skipped: 3}) {
		t.Fatalf("second import should skip all: %+v %v", again, err)
	}
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportRefusesBadArchives(t *testing.T) {
	ctx := testCtx(t)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"not a zip":      {[]byte("hello"), "not a ZIP"},
		"no manifest":    {zipOf(t, map[string]string{"a.png": "x"}), "no manifest.json"},
		"bad json":       {zipOf(t, map[string]string{"manifest.json": "{"}), "not valid JSON"},
		"other format":   {zipOf(t, map[string]string{"manifest.json": `{"format":"x","version":1}`}), `format "x"`},
		"missing id":     {zipOf(t, map[string]string{"manifest.json": `{"format":"fluxforge-gallery","version":1,"entries":[{"record":{"endpoint":"e"}}]}`}), "lacks the record's id"},
		"duplicate":      {zipOf(t, map[string]string{"manifest.json": `{"format":"fluxforge-gallery","version":1,"entries":[{"record":{"id":"a","endpoint":"e"}},{"record":{"id":"a","endpoint":"e"}}]}`}), "appears twice"},
		"missing images": {zipOf(t, map[string]string{"manifest.json": `{"format":"fluxforge-gallery","version":1,"entries":[{"record":{"id":"a","endpoint":"e","image":"gallery/a"},"files":{"gallery/a":{"name":"images/a.png"}}}]}`}), "not in the archive"},
		// Blob keys come from the record's id: a record naming another's
		// would overwrite that record's image on import.
		"another record's image": {zipOf(t, map[string]string{"images/x.png": "forged", "manifest.json": `{"format":"fluxforge-gallery","version":1,"entries":[{"record":{"id":"new","endpoint":"e","image":"gallery/old"},"files":{"gallery/old":{"name":"images/x.png"}}}]}`}), "not its own"},
		"another record's input": {zipOf(t, map[string]string{"images/x.png": "forged", "manifest.json": `{"format":"fluxforge-gallery","version":1,"entries":[{"record":{"id":"new","endpoint":"e","inputs":{"image":"gallery/old"}},"files":{"gallery/old":{"name":"images/x.png"}}}]}`}), "not its own"},
		"an id that nests":       {zipOf(t, map[string]string{"images/x.png": "forged", "manifest.json": `{"format":"fluxforge-gallery","version":1,"entries":[{"record":{"id":"old/image","endpoint":"e","image":"gallery/old/image"},"files":{"gallery/old/image":{"name":"images/x.png"}}}]}`}), "not its own"},
	} {
		g := New(core.NewMemoryStorage())
		_, err := g.Import(ctx, tc.data)
		var ie *ImportError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an ImportError containing %q", name, err, tc.want)
		}
		if all, _ := g.List(ctx, ""); len(all) != 0 {
			t.Errorf("%s: a refused import wrote %d records", name, len(all))
		}
	}
}
