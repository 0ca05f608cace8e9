package core

import (
	"encoding/json"
	"errors"
	"testing"
)

type rec struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func TestMemoryStorageRecords(t *testing.T) {
	checkRecords(t, NewMemoryStorage())
}

// checkRecords is the Storage contract for records, run against every
// implementation: memory here, IndexedDB in the browser tests.
func checkRecords(t *testing.T, s Storage) {
	t.Helper()
	ctx := testCtx(t)
	for _, r := range []rec{{"b", "second"}, {"a", "first"}, {"c", "third"}} {
		if err := s.Put(ctx, StoreJobs, r.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	var got rec
	if err := s.Get(ctx, StoreJobs, "b", &got); err != nil || got.Name != "second" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := s.List(ctx, StoreJobs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, raw := range list {
		var r rec
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if len(ids) != 3 || ids[0] != "a" || ids[1] != "b" || ids[2] != "c" {
		t.Fatalf("List order %v, want key order a b c", ids)
	}
	if err := s.Delete(ctx, StoreJobs, "b"); err != nil {
		t.Fatal(err)
	}
	err = s.Get(ctx, StoreJobs, "b", &got)
	var se *StorageError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.Store != StoreJobs || se.Key != "b" || se.Op != "get" {
		t.Fatalf("Get after Delete = %v, want a StorageError wrapping ErrNotFound", err)
	}
	if other, _ := s.List(ctx, StoreGallery); len(other) != 0 {
		t.Fatalf("stores leak into each other: %d gallery records", len(other))
	}
	if err := s.Put(ctx, "nope", "k", 1); !errors.As(err, &se) || se.Store != "nope" {
		t.Fatalf("unknown store: %v", err)
	}
}

func TestMemoryStorageRefusesBadInput(t *testing.T) {
	ctx := testCtx(t)
	s := NewMemoryStorage()
	var se *StorageError
	if err := s.Put(ctx, StoreJobs, "", 1); !errors.As(err, &se) {
		t.Errorf("empty key: %v", err)
	}
	if err := s.Put(ctx, StoreJobs, "k", func() {}); !errors.As(err, &se) {
		t.Errorf("unencodable value: %v", err)
	}
	_ = s.Put(ctx, StoreJobs, "k", "a string")
	var n int
	if err := s.Get(ctx, StoreJobs, "k", &n); !errors.As(err, &se) || errors.Is(err, ErrNotFound) {
		t.Errorf("decoding into the wrong type: %v", err)
	}
}

func TestMemoryStorageBlobsAreCopies(t *testing.T) {
	ctx := testCtx(t)
	s := NewMemoryStorage()
	data := []byte{1, 2, 3}
	if err := s.PutBlob(ctx, "img", data, "image/png"); err != nil {
		t.Fatal(err)
	}
	data[0] = 9
	got, ctype, err := s.GetBlob(ctx, "img")
	if err != nil || got[0] != 1 || ctype != "image/png" {
		t.Fatalf("GetBlob = %v %q %v: the stored blob must not alias the caller's slice", got, ctype, err)
	}
	got[1] = 9
	again, _, _ := s.GetBlob(ctx, "img")
	if again[1] != 2 {
		t.Fatal("GetBlob handed out the stored slice")
	}
	if err := s.DeleteBlob(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetBlob(ctx, "img"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetBlob after delete: %v", err)
	}
}
