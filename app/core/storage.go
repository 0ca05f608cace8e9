package core

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// Storage keeps the user's work in the browser: JSON records in named stores
// and binary blobs (images, dataset files) under their own keys.
type Storage interface {
	// Put stores v, JSON-encoded, under key.
	Put(ctx context.Context, store, key string, v any) error
	// Get decodes the record into v; a miss is a *StorageError wrapping ErrNotFound.
	Get(ctx context.Context, store, key string, v any) error
	// List returns every record of the store in key order.
	List(ctx context.Context, store string) ([]json.RawMessage, error)
	Delete(ctx context.Context, store, key string) error
	PutBlob(ctx context.Context, key string, data []byte, contentType string) error
	GetBlob(ctx context.Context, key string) (data []byte, contentType string, err error)
	DeleteBlob(ctx context.Context, key string) error
}

// The record stores. Blobs live in a store of their own.
const (
	StoreJobs     = "jobs"
	StoreModels   = "models"
	StoreGallery  = "gallery"
	StoreDrafts   = "drafts"
	StoreSettings = "settings"

	storeBlobs = "blobs"
)

// Stores lists the record stores; any other name is refused, as IndexedDB would.
func Stores() []string {
	return []string{StoreJobs, StoreModels, StoreGallery, StoreDrafts, StoreSettings}
}

func checkStore(op, store, key string) error {
	if !slices.Contains(Stores(), store) {
		return &StorageError{Op: op, Store: store, Key: key, Err: fmt.Errorf("unknown store (want one of %v)", Stores())}
	}
	return nil
}

func encodeRecord(op, store, key string, v any) ([]byte, error) {
	if key == "" {
		return nil, &StorageError{Op: op, Store: store, Err: fmt.Errorf("empty key")}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, &StorageError{Op: op, Store: store, Key: key, Err: fmt.Errorf("encode: %w", err)}
	}
	return data, nil
}

func decodeRecord(store, key string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return &StorageError{Op: "get", Store: store, Key: key, Err: fmt.Errorf("decode: %w", err)}
	}
	return nil
}

type blob struct {
	data        []byte
	contentType string
}

// memoryStorage keeps everything in maps: for native runs and tests.
type memoryStorage struct {
	mu      sync.RWMutex
	records map[string]map[string][]byte
	blobs   map[string]blob
}

// NewMemoryStorage returns an empty Storage that lives as long as the process.
func NewMemoryStorage() Storage {
	return &memoryStorage{records: map[string]map[string][]byte{}, blobs: map[string]blob{}}
}

func (m *memoryStorage) Put(ctx context.Context, store, key string, v any) error {
	if err := checkStore("put", store, key); err != nil {
		return err
	}
	data, err := encodeRecord("put", store, key, v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records[store] == nil {
		m.records[store] = map[string][]byte{}
	}
	m.records[store][key] = data
	return nil
}

func (m *memoryStorage) Get(ctx context.Context, store, key string, v any) error {
	if err := checkStore("get", store, key); err != nil {
		return err
	}
	m.mu.RLock()
	data, ok := m.records[store][key]
	m.mu.RUnlock()
	if !ok {
		return &StorageError{Op: "get", Store: store, Key: key, Err: ErrNotFound}
	}
	return decodeRecord(store, key, data, v)
}

func (m *memoryStorage) List(ctx context.Context, store string) ([]json.RawMessage, error) {
	if err := checkStore("list", store, ""); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	keys := make([]string, 0, len(m.records[store]))
	for k := range m.records[store] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]json.RawMessage, len(keys))
	for i, k := range keys {
		out[i] = slices.Clone(m.records[store][k])
	}
	return out, nil
}

func (m *memoryStorage) Delete(ctx context.Context, store, key string) error {
	if err := checkStore("delete", store, key); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.records[store], key)
	m.mu.Unlock()
	return nil
}

func (m *memoryStorage) PutBlob(ctx context.Context, key string, data []byte, contentType string) error {
	if key == "" {
		return &StorageError{Op: "put", Store: storeBlobs, Err: fmt.Errorf("empty key")}
	}
	m.mu.Lock()
	m.blobs[key] = blob{data: slices.Clone(data), contentType: contentType}
	m.mu.Unlock()
	return nil
}

func (m *memoryStorage) GetBlob(ctx context.Context, key string) ([]byte, string, error) {
	m.mu.RLock()
	b, ok := m.blobs[key]
	m.mu.RUnlock()
	if !ok {
		return nil, "", &StorageError{Op: "get", Store: storeBlobs, Key: key, Err: ErrNotFound}
	}
	return slices.Clone(b.data), b.contentType, nil
}

func (m *memoryStorage) DeleteBlob(ctx context.Context, key string) error {
	m.mu.Lock()
	delete(m.blobs, key)
	m.mu.Unlock()
	return nil
}

// Volatile reports that nothing here outlives the process.
func (m *memoryStorage) Volatile() bool { return true }
