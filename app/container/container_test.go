package container

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
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

// listCounter counts how often the job records are listed.
type listCounter struct {
	core.Storage
	jobLists atomic.Int32
}

func (l *listCounter) List(ctx context.Context, store string) ([]json.RawMessage, error) {
	if store == core.StoreJobs {
		l.jobLists.Add(1)
	}
	return l.Storage.List(ctx, store)
}

func TestFinetuningIsBuiltOnceAndResumesJobsOnce(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/poll" || !strings.Contains(r.URL.Query().Get("url"), "id=left") {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusNotFound)
			return
		}
		polls.Add(1)
		_, _ = io.WriteString(w, `{"id":"left","status":"Ready"}`)
	}))
	t.Cleanup(srv.Close)
	store := &listCounter{Storage: core.NewMemoryStorage()}
	// A job the last session left training.
	left := finetuning.Job{ID: "left", Status: bfl.StatusPending, PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=left"}
	if err := store.Put(testCtx(t), core.StoreJobs, left.ID, left); err != nil {
		t.Fatal(err)
	}
	c := New(Options{
		API:         core.APIOptions{BaseURL: srv.URL, Timeout: 5 * time.Second},
		OpenStorage: func(context.Context) (core.Storage, error) { return store, nil },
	})
	c.API()
	time.Sleep(50 * time.Millisecond)
	if store.jobLists.Load() != 0 || polls.Load() != 0 {
		t.Fatal("jobs were resumed before the finetuning service was asked for")
	}

	// Every mount of the tab asks for the service again.
	var wg sync.WaitGroup
	svcs := make([]*finetuning.Service, 8)
	for i := range svcs {
		wg.Go(func() { svcs[i] = c.Finetuning() })
	}
	wg.Wait()
	for _, s := range svcs {
		if s != svcs[0] {
			t.Fatal("Finetuning built more than once")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var j finetuning.Job
		if err := store.Get(testCtx(t), core.StoreJobs, "left", &j); err == nil && j.Status == bfl.StatusReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unfinished job was not resumed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := store.jobLists.Load(); n != 1 {
		t.Errorf("stored jobs listed %d times for resuming, want 1", n)
	}
	if n := polls.Load(); n != 1 {
		t.Errorf("the resumed job was polled %d times, want 1", n)
	}
}
