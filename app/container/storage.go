package container

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/fluxforge/fluxforge/app/core"
)

// openBrowserStorage opens IndexedDB, falling back to memory where the
// runtime has none (native builds, Node).
func openBrowserStorage(ctx context.Context) (core.Storage, error) {
	s, err := core.OpenIndexedDB(ctx, DBName)
	if errors.Is(err, errors.ErrUnsupported) {
		return core.NewMemoryStorage(), nil
	}
	return s, err
}

// lazyStorage opens the real storage on its first operation: opening
// IndexedDB waits for browser events, which must happen off the UI goroutine.
type lazyStorage struct {
	open func(context.Context) (core.Storage, error)

	mu       sync.Mutex
	s        core.Storage
	volatile bool
}

// get opens the storage once; a failed open is retried on the next call, as
// the failure may be passing (a blocked upgrade in another tab).
func (l *lazyStorage) get(ctx context.Context) (core.Storage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s, nil
	}
	s, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	l.s = s
	_, l.volatile = s.(interface{ Volatile() bool })
	return s, nil
}

func (l *lazyStorage) Put(ctx context.Context, store, key string, v any) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Put(ctx, store, key, v)
}

func (l *lazyStorage) Get(ctx context.Context, store, key string, v any) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Get(ctx, store, key, v)
}

func (l *lazyStorage) List(ctx context.Context, store string) ([]json.RawMessage, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, store)
}

func (l *lazyStorage) Delete(ctx context.Context, store, key string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, store, key)
}

func (l *lazyStorage) PutBlob(ctx context.Context, key string, data []byte, contentType string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.PutBlob(ctx, key, data, contentType)
}

func (l *lazyStorage) GetBlob(ctx context.Context, key string) ([]byte, string, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, "", err
	}
	return s.GetBlob(ctx, key)
}

func (l *lazyStorage) DeleteBlob(ctx context.Context, key string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.DeleteBlob(ctx, key)
}
