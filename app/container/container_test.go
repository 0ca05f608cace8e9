package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/inference"
	"github.com/fluxforge/fluxforge/app/service/models"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls done until it holds, failing with why after 10 s.
func waitFor(t *testing.T, why string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	cfg, flags := c.Config(), c.Flags()
	if c.Storage() != st || c.Config() != cfg || c.Flags() != flags {
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

// listCounter counts how often the job and gallery records are listed.
type listCounter struct {
	core.Storage
	jobLists, galleryLists atomic.Int32
}

func (l *listCounter) List(ctx context.Context, store string) ([]json.RawMessage, error) {
	switch store {
	case core.StoreJobs:
		l.jobLists.Add(1)
	case core.StoreGallery:
		l.galleryLists.Add(1)
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
	waitFor(t, "the unfinished job was not resumed", func() bool {
		var j finetuning.Job
		err := store.Get(testCtx(t), core.StoreJobs, "left", &j)
		return err == nil && j.Status == bfl.StatusReady
	})
	if n := store.jobLists.Load(); n != 1 {
		t.Errorf("stored jobs listed %d times for resuming, want 1", n)
	}
	if n := polls.Load(); n != 1 {
		t.Errorf("the resumed job was polled %d times, want 1", n)
	}
}

// fakeGenerator answers submits with a new task id and each task's polls with
// Pending `pending` times, then Ready (without an image link, which ends the
// task as well). It records the most tasks it had in flight at once.
type fakeGenerator struct {
	pending int

	mu       sync.Mutex
	next     int
	polls    map[string]int
	inFlight int
	peak     int
}

func (f *fakeGenerator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v1/"):
		f.next++
		id := fmt.Sprintf("task-%d", f.next)
		f.polls[id] = 0
		f.inFlight++
		f.peak = max(f.peak, f.inFlight)
		fmt.Fprintf(w, `{"id":%q,"polling_url":"https://api.us1.bfl.ai/v1/get_result?id=%s"}`, id, id)
	case r.URL.Path == "/api/poll":
		u, err := url.Parse(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := u.Query().Get("id")
		n, known := f.polls[id]
		if !known {
			http.Error(w, "unknown task "+id, http.StatusNotFound)
			return
		}
		f.polls[id] = n + 1
		if n < f.pending {
			fmt.Fprintf(w, `{"id":%q,"status":"Pending","progress":0.5}`, id)
			return
		}
		f.inFlight--
		fmt.Fprintf(w, `{"id":%q,"status":"Ready","result":{}}`, id)
	default:
		http.Error(w, "unexpected "+r.URL.String(), http.StatusNotFound)
	}
}

func newGeneratorContainer(t *testing.T, f *fakeGenerator, store core.Storage) *Container {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return New(Options{
		API:         core.APIOptions{BaseURL: srv.URL, Timeout: 5 * time.Second},
		OpenStorage: func(context.Context) (core.Storage, error) { return store, nil },
	})
}

func TestGenerationServicesAreBuiltOnceAndLazily(t *testing.T) {
	store := &listCounter{Storage: core.NewMemoryStorage()}
	c := newGeneratorContainer(t, &fakeGenerator{polls: map[string]int{}}, store)
	c.API()
	time.Sleep(50 * time.Millisecond)
	if store.galleryLists.Load() != 0 {
		t.Fatal("the gallery was read before a generation service was asked for")
	}
	const n = 8
	var wg sync.WaitGroup
	ms, gs, is := make([]*models.Service, n), make([]*gallery.Gallery, n), make([]*inference.Service, n)
	for i := range n {
		wg.Go(func() { ms[i], gs[i], is[i] = c.Models(), c.Gallery(), c.Inference() })
	}
	wg.Wait()
	for i := range n {
		if ms[i] != ms[0] || gs[i] != gs[0] || is[i] != is[0] {
			t.Fatalf("consumer %d got a new instance", i)
		}
	}
}

func TestTheInFlightLimitIsSharedByEveryConsumer(t *testing.T) {
	f := &fakeGenerator{pending: 1, polls: map[string]int{}}
	c := newGeneratorContainer(t, f, core.NewMemoryStorage())
	form := inference.Form{
		Endpoint: "flux-pro-1.1-ultra-finetuned",
		Model:    models.Model{ID: "ft-1", Name: "Ada", Status: bfl.StatusReady},
		Values:   map[string]string{"prompt": "ADA by the sea"},
	}
	// Two tab visits, each asking for the service and starting a batch.
	const each = 20
	var wg sync.WaitGroup
	results := make([][]inference.Result, 2)
	for i := range results {
		wg.Go(func() {
			results[i] = c.Inference().Batch(testCtx(t), inference.Variations(form, each), nil)
		})
	}
	wg.Wait()
	for _, rs := range results {
		for _, r := range rs {
			if r.Err != nil || r.Record.Status != bfl.StatusReady {
				t.Fatalf("task: %+v, %v", r.Record, r.Err)
			}
		}
	}
	if f.peak > inference.MaxInFlight {
		t.Fatalf("%d tasks in flight across two consumers, limit %d", f.peak, inference.MaxInFlight)
	}
	if f.next != 2*each {
		t.Fatalf("%d submits, want %d", f.next, 2*each)
	}
}

func TestInferenceResumesRunningTasksOnce(t *testing.T) {
	f := &fakeGenerator{polls: map[string]int{"left": 0}}
	store := &listCounter{Storage: core.NewMemoryStorage()}
	left := gallery.Record{ID: "left", Endpoint: "flux-pro-1.1-ultra-finetuned", Status: bfl.StatusPending,
		PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=left", Created: time.Now()}
	if err := gallery.New(store).Save(testCtx(t), left); err != nil {
		t.Fatal(err)
	}
	c := newGeneratorContainer(t, f, store)
	// Every mount of the tab asks for the service again and subscribes.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.Inference() })
	}
	wg.Wait()
	waitFor(t, "the running task was not resumed", func() bool {
		got, err := c.Gallery().Get(testCtx(t), "left")
		return err == nil && !got.Running()
	})
	if n := store.galleryLists.Load(); n != 1 {
		t.Errorf("gallery listed %d times for resuming, want 1", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.polls["left"]; n != 1 {
		t.Errorf("the resumed task was polled %d times, want 1", n)
	}
}
