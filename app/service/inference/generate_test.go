package inference

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/models"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// quickPoller polls every millisecond or two: real sleeps, so goroutines interleave.
var quickPoller = Poller{Initial: time.Millisecond, Max: 2 * time.Millisecond, Deadline: 10 * time.Second}

type rig struct {
	api     *fakeBFL
	store   core.Storage
	gallery *gallery.Gallery
	svc     *Service
}

func newRig(pending, maxInFlight int) *rig {
	r := &rig{api: newFakeBFL(pending), store: core.NewMemoryStorage()}
	r.gallery = gallery.New(r.store)
	r.svc = New(r.api, r.gallery, Options{Poller: quickPoller, MaxInFlight: maxInFlight})
	return r
}

func ultra(prompt string) Form {
	return Form{Endpoint: "flux-pro-1.1-ultra-finetuned", Model: readyModel, Values: map[string]string{"prompt": prompt, "aspect_ratio": "16:9"}}
}

func TestGenerateStoresTheImageWithTheWholeRequest(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(2, 0)
	var mu sync.Mutex
	var updates []gallery.Record
	rec, err := r.svc.Generate(ctx, ultra("ADA on a boat"), func(u gallery.Record) {
		mu.Lock()
		updates = append(updates, u)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != bfl.StatusReady || rec.Reason != "" || !rec.HasImage() {
		t.Fatalf("record: %+v", rec)
	}
	if *rec.Seed != 4242 || rec.SeedLocked {
		t.Fatalf("seed used should be the result's: %v", *rec.Seed)
	}
	if rec.Cost == nil || *rec.Cost != 6 || rec.ModelID != "ft-1" || rec.ModelName != "Ada" || rec.Prompt != "ADA on a boat" {
		t.Fatalf("record: %+v", rec)
	}
	if rec.Params["aspect_ratio"] != "16:9" || rec.Params["finetune_strength"] != 1.2 || rec.Params["output_format"] != "jpeg" {
		t.Fatalf("params: %v", rec.Params)
	}
	if rec.Created.IsZero() || rec.Finished.Before(rec.Created) || rec.Result == nil || rec.Result.Sample == "" {
		t.Fatalf("times/result: %+v", rec)
	}
	stored, err := r.gallery.Get(ctx, rec.ID)
	if err != nil || stored.Status != bfl.StatusReady {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	data, mt, err := r.gallery.Image(ctx, stored)
	if err != nil || mt != "image/png" || !strings.Contains(string(data), rec.ID) {
		t.Fatalf("image: %q %q %v", data, mt, err)
	}
	// Pending first, with progress, then Ready.
	if len(updates) < 3 || updates[0].Status != bfl.StatusPending || updates[1].Progress == nil || updates[len(updates)-1].Status != bfl.StatusReady {
		t.Fatalf("updates: %+v", updates)
	}
}

func TestGenerateRecordsWhyThereIsNoImage(t *testing.T) {
	for prompt, want := range map[string]struct {
		status bfl.Status
		reason string
	}{
		"[moderated] x":         {bfl.StatusContentModerated, "The image was moderated: Derivative Works."},
		"[request-moderated] x": {bfl.StatusRequestModerated, "The request was moderated."},
		"[error] x":             {bfl.StatusError, "GPU fell over"},
		"[gone] x":              {bfl.StatusTaskNotFound, "no longer knows"},
		"[expired] x":           {bfl.StatusReady, "could not be fetched"},
	} {
		ctx := testCtx(t)
		r := newRig(1, 0)
		rec, err := r.svc.Generate(ctx, ultra(prompt), nil)
		if err != nil {
			t.Errorf("%s: %v", prompt, err)
			continue
		}
		if rec.Status != want.status || !strings.Contains(rec.Reason, want.reason) || rec.HasImage() {
			t.Errorf("%s: %q %q (image %v), want %q containing %q", prompt, rec.Status, rec.Reason, rec.HasImage(), want.status, want.reason)
		}
		if stored, _ := r.gallery.Get(ctx, rec.ID); stored.Reason != rec.Reason {
			t.Errorf("%s: stored reason %q", prompt, stored.Reason)
		}
	}
}

func TestGenerateRefusesAModelThatIsNotReady(t *testing.T) {
	r := newRig(0, 0)
	f := ultra("ADA")
	p := 30.0
	f.Model = models.Model{ID: "ft-2", Name: "Bea", Status: bfl.StatusPending, Progress: &p}
	_, err := r.svc.Generate(testCtx(t), f, nil)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(nr.Reason, "still training (30%)") {
		t.Fatalf("got %v", err)
	}
	if len(r.api.posts) != 0 {
		t.Fatal("nothing may be submitted for a model that is not ready")
	}
}

func TestGenerateSubmitsNothingInvalidAndKeepsNoRecordOfARefusedSubmit(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(0, 0)
	f := ultra("ADA")
	f.Values["aspect_ratio"] = "4:1"
	var ve *core.ValidationError
	if _, err := r.svc.Generate(ctx, f, nil); !errors.As(err, &ve) || ve.Fields["aspect_ratio"] == "" {
		t.Fatalf("got %v", err)
	}
	r.api.postError = &core.APIError{Endpoint: f.Endpoint, Status: 402, Message: "Out of credits."}
	_, err := r.svc.Generate(ctx, ultra("ADA"), nil)
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 402 {
		t.Fatalf("got %v", err)
	}
	if all, _ := r.gallery.List(ctx, ""); len(all) != 0 {
		t.Fatalf("a refused submit left %d records", len(all))
	}
}

func TestGenerateKeepsInputImagesOutOfTheParams(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(0, 0)
	f := Form{Endpoint: "flux-pro-1.0-fill-finetuned", Model: readyModel, Values: map[string]string{"prompt": "ADA"},
		Images: map[string]Image{"image": {Data: pngBytes, MediaType: "image/png"}, "mask": {Data: pngBytes, MediaType: "image/png"}}}
	rec, err := r.svc.Generate(ctx, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Params["image"]; ok {
		t.Fatal("base64 image kept in params")
	}
	if r.api.posts[0]["mask"] == nil || r.api.posts[0]["image"] == nil {
		t.Fatal("image and mask must be sent")
	}
	for _, field := range []string{"image", "mask"} {
		if data, _, err := r.gallery.Input(ctx, rec, field); err != nil || string(data) != string(pngBytes) {
			t.Fatalf("%s not kept: %v", field, err)
		}
	}
}

func TestDeadlineLeavesTheTaskToResume(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(0, 0)
	r.svc.poller.Deadline = 20 * time.Millisecond
	rec, err := r.svc.Generate(ctx, ultra("[forever] ADA"), nil)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("got %v", err)
	}
	stored, _ := r.gallery.Get(ctx, rec.ID)
	if stored.Status != bfl.StatusPending || !stored.Running() {
		t.Fatalf("stored: %+v", stored)
	}
}

func TestResumeFinishesTasksLeftRunning(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(2, 0)
	var sub bfl.AsyncResponse
	if err := r.api.Post(ctx, "flux-pro-1.1-ultra-finetuned", map[string]any{"prompt": "ADA"}, &sub); err != nil {
		t.Fatal(err)
	}
	pending := gallery.Record{ID: sub.ID, PollingURL: sub.PollingURL, Endpoint: "flux-pro-1.1-ultra-finetuned", ModelID: "ft-1", Status: bfl.StatusPending, Created: time.Now()}
	done := gallery.Record{ID: "old", Endpoint: "flux-pro-1.1-ultra-finetuned", Status: bfl.StatusError}
	for _, rec := range []gallery.Record{pending, done} {
		if err := r.gallery.Save(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.svc.Resume(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := r.gallery.Get(ctx, sub.ID)
	if got.Status != bfl.StatusReady || !got.HasImage() {
		t.Fatalf("resumed: %+v", got)
	}
	if r.api.tasks[sub.ID].polls != 3 {
		t.Fatalf("polled %d times", r.api.tasks[sub.ID].polls)
	}
}

func TestBatchNeverExceedsTheInFlightLimit(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(5, MaxInFlight)
	forms := Variations(ultra("ADA"), 60)
	res := r.svc.Batch(ctx, forms, nil)
	seeds := map[int64]bool{}
	for i, x := range res {
		if x.Err != nil || x.Record.Status != bfl.StatusReady {
			t.Fatalf("task %d: %+v %v", i, x.Record, x.Err)
		}
		if x.Record.BatchID == "" || x.Record.BatchID != res[0].Record.BatchID {
			t.Fatalf("task %d batch id %q", i, x.Record.BatchID)
		}
	}
	for _, p := range r.api.posts {
		seeds[int64(p["seed"].(float64))] = true
	}
	if len(seeds) != 60 {
		t.Fatalf("%d distinct seeds for 60 variations", len(seeds))
	}
	if r.api.peak > MaxInFlight {
		t.Fatalf("%d tasks in flight, limit %d", r.api.peak, MaxInFlight)
	}
	if r.api.peak < MaxInFlight {
		t.Fatalf("peak %d: the queue should fill all %d slots", r.api.peak, MaxInFlight)
	}
}

func TestVariationsAndGrid(t *testing.T) {
	locked := ultra("ADA")
	locked.Seed = Seed{Locked: true, Value: 10}
	for i, f := range Variations(locked, 3) {
		if !f.Seed.Locked || f.Seed.Value != int64(10+i) {
			t.Fatalf("variation %d seed %+v", i, f.Seed)
		}
	}
	grid := Grid(ultra("ADA"), []float64{0.5, 1, 1.5}, []int64{1, 2})
	if len(grid) != 6 {
		t.Fatalf("%d forms", len(grid))
	}
	type cell struct {
		strength string
		seed     int64
	}
	seen := map[cell]bool{}
	for _, f := range grid {
		seen[cell{f.Values["finetune_strength"], f.Seed.Value}] = true
	}
	for _, s := range []string{"0.5", "1", "1.5"} {
		for _, seed := range []int64{1, 2} {
			if !seen[cell{s, seed}] {
				t.Fatalf("grid misses strength %s seed %d", s, seed)
			}
		}
	}
	if grid[0].Values["prompt"] != "ADA" {
		t.Fatal("grid forms must keep the other values")
	}
	grid[0].Values["prompt"] = "changed"
	if grid[1].Values["prompt"] != "ADA" {
		t.Fatal("grid forms share their values map")
	}
}

func TestSubscribersHearEveryTaskUntilTheyCancel(t *testing.T) {
	ctx := testCtx(t)
	r := newRig(1, 0)
	var heard, afterCancel atomic.Int32
	ids := sync.Map{}
	cancel := r.svc.Subscribe(func(rec gallery.Record) {
		heard.Add(1)
		ids.Store(rec.ID, rec.Status)
	})
	r.svc.Subscribe(func(gallery.Record) { afterCancel.Add(1) })
	res := r.svc.Batch(ctx, Variations(ultra("ADA"), 3), nil)
	for _, x := range res {
		st, ok := ids.Load(x.Record.ID)
		if !ok || st != bfl.StatusReady {
			t.Fatalf("subscriber last heard %v for %s, want Ready", st, x.Record.ID)
		}
	}
	cancel()
	before, other := heard.Load(), afterCancel.Load()
	if _, err := r.svc.Generate(ctx, ultra("ADA again"), nil); err != nil {
		t.Fatal(err)
	}
	if heard.Load() != before {
		t.Fatalf("a cancelled subscriber heard %d more changes", heard.Load()-before)
	}
	if afterCancel.Load() == other {
		t.Fatal("the remaining subscriber heard nothing of the new task")
	}
}

// flakyPoll fails its first polls as an outage longer than the client's own
// retries would.
type flakyPoll struct {
	*fakeBFL
	fails atomic.Int32
}

func (f *flakyPoll) Poll(ctx context.Context, u string) (bfl.ResultResponse, error) {
	if f.fails.Add(-1) >= 0 {
		return bfl.ResultResponse{}, &core.APIError{Endpoint: "poll", Message: "The proxy could not be reached: check your connection."}
	}
	return f.fakeBFL.Poll(ctx, u)
}

// A paid task outlives an outage: polling goes on, the record says why it
// is waiting, and the image arrives when the polls do.
func TestGenerateOutlivesFailedPolls(t *testing.T) {
	ctx := testCtx(t)
	api := &flakyPoll{fakeBFL: newFakeBFL(2)}
	api.fails.Store(3)
	g := gallery.New(core.NewMemoryStorage())
	svc := New(api, g, Options{Poller: quickPoller})
	var sawTrouble atomic.Bool
	rec, err := svc.Generate(ctx, ultra("ADA cat"), func(r gallery.Record) {
		if strings.Contains(r.Reason, "still trying") && strings.Contains(r.Reason, "could not be reached") {
			sawTrouble.Store(true)
		}
	})
	if err != nil || rec.Status != bfl.StatusReady || !rec.HasImage() || rec.Reason != "" {
		t.Fatalf("after 3 failed polls: %v, status %q, image %v, reason %q", err, rec.Status, rec.HasImage(), rec.Reason)
	}
	if !sawTrouble.Load() {
		t.Error("while the polls failed, no update said so")
	}
	if len(api.posts) != 1 {
		t.Errorf("%d submits for one click", len(api.posts))
	}
}

// flakyImage fails its first image fetches with the given status.
type flakyImage struct {
	*fakeBFL
	calls         atomic.Int32
	fails, status int
}

func (f *flakyImage) Image(ctx context.Context, u string) ([]byte, string, error) {
	if int(f.calls.Add(1)) <= f.fails {
		return nil, "", &core.APIError{Endpoint: "image", Status: f.status, Message: "trouble"}
	}
	return f.fakeBFL.Image(ctx, u)
}

// A Ready image whose fetch fails is fetched again while its link may live;
// a link the delivery host calls gone is not asked for again.
func TestGenerateFetchesTheImageAgainWhileTheLinkLives(t *testing.T) {
	for _, tc := range []struct {
		status, fails int
		kept          bool
		fetches       int
	}{
		{http.StatusBadGateway, 3, true, 4},
		{http.StatusTooManyRequests, 1, true, 2},
		{http.StatusNotFound, 1, false, 1}, // expired: BFL keeps results about 10 minutes
	} {
		ctx := testCtx(t)
		api := &flakyImage{fakeBFL: newFakeBFL(1), fails: tc.fails, status: tc.status}
		g := gallery.New(core.NewMemoryStorage())
		rec, err := New(api, g, Options{Poller: quickPoller}).Generate(ctx, ultra("ADA cat"), nil)
		stored, _ := g.Get(ctx, rec.ID)
		if err != nil || stored.Status != bfl.StatusReady || stored.HasImage() != tc.kept {
			t.Errorf("image %d x%d: %v, status %q, image kept %v, reason %q", tc.status, tc.fails, err, stored.Status, stored.HasImage(), stored.Reason)
		}
		if got := int(api.calls.Load()); got != tc.fetches {
			t.Errorf("image %d x%d: %d fetches, want %d", tc.status, tc.fails, got, tc.fetches)
		}
		if tc.kept && stored.Reason != "" {
			t.Errorf("image %d x%d: kept, but the reason still says %q", tc.status, tc.fails, stored.Reason)
		}
	}
}

// Past the link's life the fetch is not tried again: BFL would only answer
// that the link is gone.
func TestGenerateStopsFetchingWhenTheLinkHasDied(t *testing.T) {
	ctx := testCtx(t)
	api := &flakyImage{fakeBFL: newFakeBFL(1), fails: 1000, status: http.StatusBadGateway}
	g := gallery.New(core.NewMemoryStorage())
	var calls atomic.Int32
	start := time.Now()
	// Each reading of the clock is a minute later: the link dies within a few tries.
	now := func() time.Time { return start.Add(time.Duration(calls.Add(1)) * time.Minute) }
	rec, err := New(api, g, Options{Poller: quickPoller, Now: now}).Generate(ctx, ultra("ADA cat"), nil)
	if err != nil || rec.HasImage() || !strings.Contains(rec.Reason, "could not be fetched") {
		t.Fatalf("%v, image %v, reason %q", err, rec.HasImage(), rec.Reason)
	}
	if n := api.calls.Load(); n < 2 || n > 12 {
		t.Errorf("%d fetches; want a few, stopping about %v after the task ended", n, linkLife)
	}
}

// After a reload, a finished task whose image was not kept is fetched again
// while its link may work, and left alone once it cannot.
func TestResumeFetchesAMissingImageWhileTheLinkLives(t *testing.T) {
	ctx := testCtx(t)
	api := &flakyImage{fakeBFL: newFakeBFL(1), fails: 1, status: http.StatusNotFound}
	g := gallery.New(core.NewMemoryStorage())
	rec, err := New(api, g, Options{Poller: quickPoller}).Generate(ctx, ultra("ADA cat"), nil)
	if err != nil || rec.HasImage() {
		t.Fatalf("the first fetch should have failed: %v, image %v", err, rec.HasImage())
	}
	// A reload ten minutes on: the link is dead, nothing is fetched.
	late := func() time.Time { return rec.Finished.Add(10 * time.Minute) }
	if err := New(api, g, Options{Poller: quickPoller, Now: late}).Resume(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := api.calls.Load(); n != 1 {
		t.Errorf("%d fetches after a late reload, want none past the first", n-1)
	}
	// A reload a minute on: fetched and kept.
	if err := New(api, g, Options{Poller: quickPoller}).Resume(ctx, nil); err != nil {
		t.Fatal(err)
	}
	stored, _ := g.Get(ctx, rec.ID)
	if !stored.HasImage() || stored.Reason != "" {
		t.Errorf("after Resume: image %v, reason %q", stored.HasImage(), stored.Reason)
	}
}

// noBlobs refuses every blob, as a browser over its storage quota does.
type noBlobs struct{ core.Storage }

func (n noBlobs) PutBlob(ctx context.Context, key string, data []byte, ct string) error {
	return &core.StorageError{Op: "put", Store: "blobs", Key: key, Err: errors.New("QuotaExceededError")}
}

// A submit BFL accepted is followed to its end even when its input images
// cannot be stored: the task is paid for. The storage failure is reported.
func TestGenerateFollowsAPaidTaskWhoseInputsCannotBeKept(t *testing.T) {
	ctx := testCtx(t)
	api := newFakeBFL(1)
	g := gallery.New(noBlobs{core.NewMemoryStorage()})
	f := Form{Endpoint: "flux-pro-1.0-fill-finetuned", Model: readyModel, Values: map[string]string{"prompt": "ADA"},
		Images: map[string]Image{"image": {Data: pngBytes, MediaType: "image/png"}, "mask": {Data: pngBytes, MediaType: "image/png"}}}
	rec, err := New(api, g, Options{Poller: quickPoller}).Generate(ctx, f, nil)
	var se *core.StorageError
	if !errors.As(err, &se) {
		t.Errorf("the storage failure should be reported, got %v", err)
	}
	if len(api.posts) != 1 || api.tasks[rec.ID] == nil || api.tasks[rec.ID].polls == 0 {
		t.Fatalf("submits %d, task %q polled %v; want the paid task followed", len(api.posts), rec.ID, api.tasks[rec.ID])
	}
	stored, gerr := g.Get(ctx, rec.ID)
	if gerr != nil || stored.Status != bfl.StatusReady {
		t.Errorf("the record: %v, status %q; want it kept and Ready", gerr, stored.Status)
	}
}

// Resume, which the app starts as it opens, leaves alone a task that a
// Generate of the same session is following: one task, one slot, one fetch.
func TestResumeLeavesATaskBeingFollowedAlone(t *testing.T) {
	ctx := testCtx(t)
	api := newFakeBFL(20)
	g := gallery.New(core.NewMemoryStorage())
	svc := New(api, g, Options{Poller: quickPoller})
	saved := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := svc.Generate(ctx, ultra("ADA cat"), func(gallery.Record) { once.Do(func() { close(saved) }) })
		done <- err
	}()
	<-saved // stored Pending: Resume lists it now
	if err := svc.Resume(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.images != 1 {
		t.Errorf("the image was fetched %d times: the task was followed twice", api.images)
	}
}
