package container

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/core"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServicesAreBuiltOnceAndLazily(t *testing.T) {
	var opens atomic.Int32
	c := New(Options{OpenStorage: func(context.Context) (core.Storage, error) {
		opens.Add(1)
		return core.NewMemoryStorage(), nil
	}})
	st := c.Storage()
	if opens.Load() != 0 {
		t.Fatal("storage opened before its first operation")
	}
	var wg sync.WaitGroup
	apis := make([]*core.API, 16)
	for i := range apis {
		wg.Go(func() {
			apis[i] = c.API()
			_ = c.Storage().Put(testCtx(t), core.StoreJobs, "k", i)
		})
	}
	wg.Wait()
	for _, a := range apis {
		if a != apis[0] {
			t.Fatal("API built more than once")
		}
	}
	if opens.Load() != 1 {
		t.Fatalf("storage opened %d times, want 1", opens.Load())
	}
	if c.Storage() != st || c.Config() != c.Config() || c.Flags() != c.Flags() {
		t.Fatal("an accessor returned a new instance")
	}
}

func TestFailedStorageOpenIsReportedAndRetried(t *testing.T) {
	var opens atomic.Int32
	c := New(Options{OpenStorage: func(context.Context) (core.Storage, error) {
		if opens.Add(1) == 1 {
			return nil, &core.StorageError{Op: "open", Store: DBName, Err: errors.New("blocked")}
		}
		return core.NewMemoryStorage(), nil
	}})
	var se *core.StorageError
	if err := c.Storage().Put(testCtx(t), core.StoreJobs, "k", 1); !errors.As(err, &se) {
		t.Fatalf("first Put: %v, want the open error", err)
	}
	if err := c.Storage().Put(testCtx(t), core.StoreJobs, "k", 1); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	volatile, err := c.StorageVolatile(testCtx(t))
	if err != nil || !volatile {
		t.Fatalf("memory storage volatile = %v, %v", volatile, err)
	}
}

func TestStorageWithoutIndexedDBIsMemory(t *testing.T) {
	c := New(Options{})
	if err := c.Storage().Put(testCtx(t), core.StoreDrafts, "d", "x"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.StorageVolatile(testCtx(t)); !v {
		t.Fatal("storage without IndexedDB should be reported volatile")
	}
}

func TestSettingsRetargetTheAPI(t *testing.T) {
	auth := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth <- r.Header.Get("Authorization")
		_, _ = io.WriteString(w, `{"mode":"live","upstream":"api.us1.bfl.ai","version":"x"}`)
	}))
	t.Cleanup(srv.Close)
	c := New(Options{API: core.APIOptions{BaseURL: "http://127.0.0.1:1", Timeout: 2 * time.Second, Retries: 1,
		Sleep: func(context.Context, time.Duration) error { return nil }}})
	if err := c.Config().Set(core.KeyProxyURL, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := c.Config().Set(core.KeyProxyToken, "tok"); err != nil {
		t.Fatal(err)
	}
	c.Retarget()
	if _, err := c.API().Health(testCtx(t)); err != nil {
		t.Fatalf("Health through the configured proxy: %v", err)
	}
	if got := <-auth; got != "Bearer tok" {
		t.Fatalf("Authorization = %q", got)
	}
}
