//go:build js

package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"syscall/js"
	"testing"
	"time"
)

// These tests need a real browser: make test-wasm runs them under Node,
// where they skip, and the e2e suite runs them in Chromium, where a skip
// counts as a failure.

func browserCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBrowserIndexedDB(t *testing.T) {
	if js.Global().Get("indexedDB").Type() != js.TypeObject {
		t.Skip("no IndexedDB here (Node)")
	}
	ctx := browserCtx(t)
	name := fmt.Sprintf("core-test-%d", time.Now().UnixNano())
	s, err := OpenIndexedDB(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, s)

	blob := make([]byte, 3<<20)
	_, _ = rand.Read(blob)
	if err := s.PutBlob(ctx, "img", blob, "image/png"); err != nil {
		t.Fatal(err)
	}
	// A second connection sees what the first wrote: it is on disk, not in this one's memory.
	again, err := OpenIndexedDB(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	data, ctype, err := again.GetBlob(ctx, "img")
	if err != nil || ctype != "image/png" || !bytes.Equal(data, blob) {
		t.Fatalf("GetBlob = %d bytes %q %v", len(data), ctype, err)
	}
	var got rec
	if err := again.Get(ctx, StoreJobs, "c", &got); err != nil || got.Name != "third" {
		t.Fatalf("record through a second connection: %+v %v", got, err)
	}
	if err := again.DeleteBlob(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := again.GetBlob(ctx, "img"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetBlob after delete: %v", err)
	}
}

func TestBrowserAwaitRejects(t *testing.T) {
	if js.Global().Get("indexedDB").Type() != js.TypeObject {
		t.Skip("browser only")
	}
	p := js.Global().Get("Promise").Call("reject", js.Global().Get("Error").New("refused on purpose"))
	if _, err := await(browserCtx(t), p); err == nil || !strings.Contains(err.Error(), "refused on purpose") {
		t.Fatalf("await of a rejected promise = %v", err)
	}
	v, err := await(browserCtx(t), js.Global().Get("Promise").Call("resolve", 42))
	if err != nil || v.Int() != 42 {
		t.Fatalf("await of a resolved promise = %v, %v", v, err)
	}
}

// TestBrowserUploadProgress posts through XMLHttpRequest to the proxy that
// served the page. The simulator refuses the body (file_data is not a ZIP),
// so nothing is trained, and the 422 must come back naming the field.
func TestBrowserUploadProgress(t *testing.T) {
	if js.Global().Get("XMLHttpRequest").Type() != js.TypeFunction || pageOrigin() == "" {
		t.Skip("browser only")
	}
	body := []byte(`{"file_data":"` + strings.Repeat("QUFB", 1<<20) + `","finetune_comment":"core test","mode":"general"}`)
	var events []int64
	var total int64
	err := NewAPI(APIOptions{}).PostJSON(browserCtx(t), "finetune", body, func(sent, tot int64) {
		events = append(events, sent)
		total = tot
	}, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Field != "file_data" {
		t.Fatalf("err = %v, want a 422 naming file_data", err)
	}
	if total != int64(len(body)) || len(events) == 0 || events[len(events)-1] != total {
		t.Fatalf("progress events %v of %d", events, total)
	}
	t.Logf("%d progress events for %d bytes", len(events), total)
}
