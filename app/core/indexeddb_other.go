//go:build !js

package core

import (
	"context"
	"errors"
)

// OpenIndexedDB needs a browser; native builds (tests, the site generator)
// use NewMemoryStorage instead.
func OpenIndexedDB(ctx context.Context, name string) (Storage, error) {
	return nil, &StorageError{Op: "open", Store: name, Err: errors.ErrUnsupported}
}
