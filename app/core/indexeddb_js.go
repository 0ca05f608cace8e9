//go:build js

package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall/js"
)

// dbVersion must grow whenever the set of object stores changes.
const dbVersion = 1

// OpenIndexedDB opens (creating or upgrading) the app's database and asks the
// browser to keep it when space runs low. It must not run on the UI
// goroutine's JS callbacks: it waits for browser events.
func OpenIndexedDB(ctx context.Context, name string) (Storage, error) {
	idb := js.Global().Get("indexedDB")
	if idb.Type() != js.TypeObject {
		return nil, &StorageError{Op: "open", Store: name, Err: fmt.Errorf("this browser has no IndexedDB: %w", errors.ErrUnsupported)}
	}
	req := idb.Call("open", name, dbVersion)
	upgrade := js.FuncOf(func(js.Value, []js.Value) any {
		db := req.Get("result")
		names := db.Get("objectStoreNames")
		for _, s := range append(Stores(), storeBlobs) {
			if !names.Call("contains", s).Bool() {
				db.Call("createObjectStore", s)
			}
		}
		return nil
	})
	defer upgrade.Release()
	req.Set("onupgradeneeded", upgrade)
	db, err := awaitRequest(ctx, req)
	if err != nil {
		return nil, &StorageError{Op: "open", Store: name, Err: err}
	}
	requestPersistence(ctx)
	return &indexedDB{db: db}, nil
}

// requestPersistence asks that the browser not evict the database under
// storage pressure. A refusal is not an error: the data is still kept, just
// without that promise.
func requestPersistence(ctx context.Context) {
	storage := js.Global().Get("navigator").Get("storage")
	if storage.Type() != js.TypeObject || storage.Get("persist").Type() != js.TypeFunction {
		return
	}
	_, _ = await(ctx, storage.Call("persist"))
}

// await waits for a promise, with the rejection path that app.Value.Then lacks.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	return Settle(ctx, func(ok, ko js.Func) { p.Call("then", ok, ko) })
}

// awaitRequest waits for an IDBRequest's success or error event.
func awaitRequest(ctx context.Context, req js.Value) (js.Value, error) {
	done := make(chan error, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any { done <- nil; return nil })
	ko := js.FuncOf(func(js.Value, []js.Value) any { done <- jsError(req.Get("error")); return nil })
	defer ok.Release()
	defer ko.Release()
	req.Set("onsuccess", ok)
	req.Set("onerror", ko)
	select {
	case err := <-done:
		if err != nil {
			return js.Undefined(), err
		}
		return req.Get("result"), nil
	case <-ctx.Done():
		req.Set("onsuccess", js.Null())
		req.Set("onerror", js.Null())
		return js.Undefined(), ctx.Err()
	}
}

// awaitTx waits until a write transaction is durable (complete) or failed.
func awaitTx(ctx context.Context, tx js.Value) error {
	done := make(chan error, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any { done <- nil; return nil })
	ko := js.FuncOf(func(js.Value, []js.Value) any { done <- jsError(tx.Get("error")); return nil })
	defer ok.Release()
	defer ko.Release()
	tx.Set("oncomplete", ok)
	tx.Set("onerror", ko)
	tx.Set("onabort", ko)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		tx.Set("oncomplete", js.Null())
		tx.Set("onerror", js.Null())
		tx.Set("onabort", js.Null())
		return ctx.Err()
	}
}

func arg0(a []js.Value) js.Value {
	if len(a) == 0 {
		return js.Undefined()
	}
	return a[0]
}

func jsError(v js.Value) error {
	if v.IsNull() || v.IsUndefined() {
		return errors.New("unknown browser error")
	}
	if v.Type() == js.TypeObject && v.Get("name").Type() == js.TypeString {
		return fmt.Errorf("%s: %s", v.Get("name").String(), v.Get("message").String())
	}
	return errors.New(v.Call("toString").String())
}

// indexedDB stores records as JSON strings, so List can hand them back raw,
// and blobs as {type, data: Uint8Array}.
type indexedDB struct {
	db js.Value
}

func (d *indexedDB) write(ctx context.Context, op, store, key string, do func(s js.Value)) error {
	tx, err := d.tx(store, "readwrite")
	if err != nil {
		return &StorageError{Op: op, Store: store, Key: key, Err: err}
	}
	do(tx.Call("objectStore", store))
	if err := awaitTx(ctx, tx); err != nil {
		return &StorageError{Op: op, Store: store, Key: key, Err: err}
	}
	return nil
}

func (d *indexedDB) read(ctx context.Context, op, store, key string, do func(s js.Value) js.Value) (js.Value, error) {
	tx, err := d.tx(store, "readonly")
	if err != nil {
		return js.Undefined(), &StorageError{Op: op, Store: store, Key: key, Err: err}
	}
	v, err := awaitRequest(ctx, do(tx.Call("objectStore", store)))
	if err != nil {
		return js.Undefined(), &StorageError{Op: op, Store: store, Key: key, Err: err}
	}
	return v, nil
}

// tx opens a transaction; IndexedDB throws synchronously (e.g. a closed
// database), which syscall/js turns into a panic.
func (d *indexedDB) tx(store, mode string) (tx js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("transaction: %v", r)
		}
	}()
	return d.db.Call("transaction", store, mode), nil
}

func (d *indexedDB) Put(ctx context.Context, store, key string, v any) error {
	if err := checkStore("put", store, key); err != nil {
		return err
	}
	data, err := encodeRecord("put", store, key, v)
	if err != nil {
		return err
	}
	return d.write(ctx, "put", store, key, func(s js.Value) { s.Call("put", string(data), key) })
}

func (d *indexedDB) Get(ctx context.Context, store, key string, v any) error {
	if err := checkStore("get", store, key); err != nil {
		return err
	}
	r, err := d.read(ctx, "get", store, key, func(s js.Value) js.Value { return s.Call("get", key) })
	if err != nil {
		return err
	}
	if r.Type() != js.TypeString {
		return &StorageError{Op: "get", Store: store, Key: key, Err: ErrNotFound}
	}
	return decodeRecord(store, key, []byte(r.String()), v)
}

func (d *indexedDB) List(ctx context.Context, store string) ([]json.RawMessage, error) {
	if err := checkStore("list", store, ""); err != nil {
		return nil, err
	}
	r, err := d.read(ctx, "list", store, "", func(s js.Value) js.Value { return s.Call("getAll") })
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, r.Length())
	for i := range r.Length() {
		if v := r.Index(i); v.Type() == js.TypeString {
			out = append(out, json.RawMessage(v.String()))
		}
	}
	return out, nil
}

func (d *indexedDB) Delete(ctx context.Context, store, key string) error {
	if err := checkStore("delete", store, key); err != nil {
		return err
	}
	return d.write(ctx, "delete", store, key, func(s js.Value) { s.Call("delete", key) })
}

func (d *indexedDB) PutBlob(ctx context.Context, key string, data []byte, contentType string) error {
	if key == "" {
		return &StorageError{Op: "put", Store: storeBlobs, Err: errors.New("empty key")}
	}
	u8 := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(u8, data)
	rec := js.Global().Get("Object").New()
	rec.Set("type", contentType)
	rec.Set("data", u8)
	return d.write(ctx, "put", storeBlobs, key, func(s js.Value) { s.Call("put", rec, key) })
}

func (d *indexedDB) GetBlob(ctx context.Context, key string) ([]byte, string, error) {
	r, err := d.read(ctx, "get", storeBlobs, key, func(s js.Value) js.Value { return s.Call("get", key) })
	if err != nil {
		return nil, "", err
	}
	if r.Type() != js.TypeObject {
		return nil, "", &StorageError{Op: "get", Store: storeBlobs, Key: key, Err: ErrNotFound}
	}
	u8 := r.Get("data")
	data := make([]byte, u8.Length())
	js.CopyBytesToGo(data, u8)
	return data, r.Get("type").String(), nil
}

func (d *indexedDB) DeleteBlob(ctx context.Context, key string) error {
	return d.write(ctx, "delete", storeBlobs, key, func(s js.Value) { s.Call("delete", key) })
}
