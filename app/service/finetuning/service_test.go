package finetuning

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

func threeImages() *Dataset {
	d := &Dataset{}
	d.AddImage(randomImage("a.jpg", jpegHead, 4000, 1))
	d.AddImage(randomImage("b.png", pngHead, 3000, 2))
	d.AddImage(randomImage("c.webp", webpHead, 2000, 3))
	d.SetCaption("a.jpg", "TOK at the sea")
	return d
}

// countingStore counts blob writes to show unchanged images are not rewritten.
type countingStore struct {
	core.Storage
	blobPuts atomic.Int32
}

func (c *countingStore) PutBlob(ctx context.Context, key string, data []byte, ct string) error {
	c.blobPuts.Add(1)
	return c.Storage.PutBlob(ctx, key, data, ct)
}

func TestDraftSurvivesAndSavesOnlyNewBlobs(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{Storage: core.NewMemoryStorage()}
	drafts := NewDrafts(store)

	d, f, err := drafts.Load(ctx)
	if err != nil || len(d.Images) != 0 || f[FieldMode] != "general" {
		t.Fatalf("empty load: %+v %v %v", d, f, err)
	}
	d = threeImages()
	d.AddCaption("orphan.txt", "lonely")
	form := validForm()
	form[FieldIterations] = "450"
	if err := drafts.Save(ctx, d, form); err != nil {
		t.Fatal(err)
	}
	if n := store.blobPuts.Load(); n != 3 {
		t.Fatalf("%d blob writes, want 3", n)
	}
	d.SetCaption("b.png", "TOK on a chair")
	gone := d.Images[2]
	d.Remove("c.webp")
	if err := drafts.Save(ctx, d, form); err != nil {
		t.Fatal(err)
	}
	if n := store.blobPuts.Load(); n != 3 {
		t.Errorf("re-save rewrote blobs: %d writes", n)
	}
	if _, _, err := store.GetBlob(ctx, blobKey(gone)); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("removed image's blob kept: %v", err)
	}

	got, gotForm, err := NewDrafts(store).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 2 || !bytes.Equal(got.Images[0].Data, d.Images[0].Data) ||
		got.Images[1].Caption != "TOK on a chair" || got.Images[0].OriginalW != d.Images[0].OriginalW ||
		got.Images[0].SHA256 != d.Images[0].SHA256 || got.Orphans["orphan.txt"] != "lonely" {
		t.Errorf("restored dataset differs: %+v", got)
	}
	if gotForm[FieldIterations] != "450" || gotForm[FieldComment] != "Portraits of Ada" {
		t.Errorf("restored form %v", gotForm)
	}

	if err := drafts.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for _, im := range d.Images {
		if _, _, err := store.GetBlob(ctx, blobKey(im)); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("blob of %s survives Clear", im.Name)
		}
	}
	if d2, _, _ := drafts.Load(ctx); len(d2.Images) != 0 {
		t.Error("draft survives Clear")
	}
}

func TestDraftLoadReportsMissingBlobs(t *testing.T) {
	ctx := context.Background()
	store := core.NewMemoryStorage()
	drafts := NewDrafts(store)
	d := threeImages()
	if err := drafts.Save(ctx, d, validForm()); err != nil {
		t.Fatal(err)
	}
	store.DeleteBlob(ctx, blobKey(d.Images[1]))
	got, _, err := drafts.Load(ctx)
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "b.png") || len(got.Images) != 2 {
		t.Fatalf("got %d images, err %v", len(got.Images), err)
	}
}

func TestStartSendsPackedRequestSavesJobAndClearsDraft(t *testing.T) {
	ctx := context.Background()
	store := core.NewMemoryStorage()
	api := &fakeAPI{postRes: bfl.AsyncResponse{ID: "ft-1", PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=ft-1"}}
	s := New(t.Context(), api, store)
	d := threeImages()
	form := validForm()
	form[FieldTrigger] = "TOK"
	if err := s.Drafts.Save(ctx, d, form); err != nil {
		t.Fatal(err)
	}
	var last [2]int64
	job, err := s.Start(ctx, d, form, StartOptions{Progress: func(sent, total int64) { last = [2]int64{sent, total} }})
	if err != nil {
		t.Fatal(err)
	}
	if last[0] != last[1] || last[1] != int64(len(api.posted)) {
		t.Errorf("progress %v for a %d-byte body", last, len(api.posted))
	}
	var body map[string]any
	if err := json.Unmarshal(api.posted, &body); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(body[FieldFileData].(string))
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil || len(zr.File) != 4 {
		t.Fatalf("sent ZIP: %v, %d entries", err, len(zr.File))
	}
	if body[FieldComment] != "Portraits of Ada" || body[FieldMode] != "general" {
		t.Errorf("sent fields %v", body)
	}
	if job.ID != "ft-1" || job.Name != "Portraits of Ada" || job.TriggerWord != "TOK" || job.Type != "full" ||
		job.Status != bfl.StatusPending || job.PollingURL == "" {
		t.Errorf("job %+v", job)
	}
	jobs, err := s.Jobs.Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].ID != "ft-1" {
		t.Errorf("stored jobs %+v %v", jobs, err)
	}
	if restored, _, _ := s.Drafts.Load(ctx); len(restored.Images) != 0 {
		t.Error("draft kept after a successful start")
	}
}

// ctxStorage refuses to write once the context is done, as IndexedDB
// reports a write whose caller stopped waiting.
type ctxStorage struct{ core.Storage }

func (c ctxStorage) Put(ctx context.Context, store, key string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Storage.Put(ctx, store, key, v)
}

func (c ctxStorage) Delete(ctx context.Context, store, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Storage.Delete(ctx, store, key)
}

// cancelAfterPost cancels the caller's context as BFL's answer arrives: the
// user left the tab at that moment.
type cancelAfterPost struct {
	*fakeAPI
	cancel context.CancelFunc
}

func (c cancelAfterPost) PostJSON(ctx context.Context, endpoint string, body []byte, progress func(int64, int64), out any) error {
	err := c.fakeAPI.PostJSON(ctx, endpoint, body, progress, out)
	c.cancel()
	return err
}

// A training BFL accepted is recorded and its draft cleared even when the
// caller stopped waiting as the answer came: otherwise the paid job would
// be missing after a reload and the draft would invite a second start.
func TestStartKeepsTheRecordOfAnAcceptedTrainingWhenTheCallerLeaves(t *testing.T) {
	store := ctxStorage{core.NewMemoryStorage()}
	ctx, cancel := context.WithCancel(context.Background())
	api := cancelAfterPost{fakeAPI: &fakeAPI{postRes: bfl.AsyncResponse{ID: "ft-1", PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=ft-1"}}, cancel: cancel}
	s := New(t.Context(), api, store)
	d, form := threeImages(), validForm()
	if err := s.Drafts.Save(ctx, d, form); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, d, form, StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	jobs, err := s.Jobs.Jobs(context.Background())
	if err != nil || len(jobs) != 1 || jobs[0].ID != "ft-1" {
		t.Errorf("stored jobs %+v %v; want the accepted training", jobs, err)
	}
	if restored, _, _ := s.Drafts.Load(context.Background()); len(restored.Images) != 0 {
		t.Error("the draft outlived an accepted start")
	}
}

func TestStartFailureKeepsDraft(t *testing.T) {
	ctx := context.Background()
	store := core.NewMemoryStorage()
	api422 := &core.APIError{Status: 422, Field: FieldIterations, Message: "Iterations: input should be less than or equal to 1000"}
	api := &fakeAPI{postErr: api422}
	s := New(t.Context(), api, store)
	d := threeImages()
	form := validForm()
	if err := s.Drafts.Save(ctx, d, form); err != nil {
		t.Fatal(err)
	}
	_, err := s.Start(ctx, d, form, StartOptions{})
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Field != FieldIterations {
		t.Fatalf("err = %v, want the 422 APIError", err)
	}
	if restored, _, _ := s.Drafts.Load(ctx); len(restored.Images) != 3 {
		t.Error("draft lost after a failed upload")
	}
	if jobs, _ := s.Jobs.Jobs(ctx); len(jobs) != 0 {
		t.Errorf("job saved for a failed upload: %+v", jobs)
	}

	// Nothing is sent for a bad form or a blocked dataset.
	api.posted = nil
	bad := validForm()
	bad[FieldIterations] = "99999"
	if _, err := s.Start(ctx, d, bad, StartOptions{}); fieldErrors(t, err)[FieldIterations] == "" {
		t.Errorf("bad form: %v", err)
	}
	empty := &Dataset{}
	if _, err := s.Start(ctx, empty, form, StartOptions{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("empty dataset: %v", err)
	}
	if api.posted != nil {
		t.Error("something was uploaded for an invalid request")
	}
}

func TestDebouncerRunsOnlyTheLast(t *testing.T) {
	var ran atomic.Int32
	var last atomic.Int32
	d := Debouncer{Delay: 200 * time.Millisecond}
	for i := range 5 {
		d.Trigger(func() { ran.Add(1); last.Store(int32(i)) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for ran.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if ran.Load() != 1 || last.Load() != 4 {
		t.Errorf("ran %d times, last %d; want once, the last", ran.Load(), last.Load())
	}
	d.Trigger(func() { ran.Add(1) })
	d.Stop()
	time.Sleep(300 * time.Millisecond)
	if ran.Load() != 1 {
		t.Error("a stopped debouncer still ran its function")
	}

	flushed := make(chan struct{})
	slow := Debouncer{Delay: time.Hour}
	slow.Trigger(func() { close(flushed) })
	slow.Flush()
	select {
	case <-flushed:
	case <-time.After(5 * time.Second):
		t.Fatal("Flush did not run the waiting function")
	}
	slow.Flush() // nothing waits any more: must not run it twice (close would panic)
}

// jobsFail refuses to write job records, as a full or evicted browser store would.
type jobsFail struct{ core.Storage }

func (j jobsFail) Put(ctx context.Context, store, key string, v any) error {
	if store == core.StoreJobs {
		return &core.StorageError{Op: "put", Store: store, Key: key, Err: errors.New("QuotaExceededError")}
	}
	return j.Storage.Put(ctx, store, key, v)
}

func TestStartReportsAnAcceptedTrainingWhoseRecordFailed(t *testing.T) {
	ctx := context.Background()
	store := jobsFail{core.NewMemoryStorage()}
	api := &fakeAPI{postRes: bfl.AsyncResponse{ID: "ft-9", PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=ft-9"}}
	s := New(t.Context(), api, store)
	d := threeImages()
	if err := s.Drafts.Save(ctx, d, validForm()); err != nil {
		t.Fatal(err)
	}
	job, err := s.Start(ctx, d, validForm(), StartOptions{})
	var se *core.StorageError
	if job.ID != "ft-9" || !errors.As(err, &se) {
		t.Fatalf("job %q, err %v: want the accepted job and the storage error", job.ID, err)
	}
	// The draft is kept: only the UI, which knows the training started, decides to drop it.
	if restored, _, _ := s.Drafts.Load(ctx); len(restored.Images) != 3 {
		t.Error("draft cleared although the job record was not saved")
	}
}

func TestStartedJobIsFollowedToTheEndWithoutSubscribers(t *testing.T) {
	ctx := t.Context()
	store := core.NewMemoryStorage()
	api := &fakeAPI{
		postRes: bfl.AsyncResponse{ID: "ft-2", PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=ft-2"},
		script:  map[string][]pollAnswer{"ft-2": {pending(20), pending(70), {res: bfl.ResultResponse{Status: bfl.StatusReady}}}},
	}
	s := New(ctx, api, store)
	s.Jobs.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	ended := make(chan Job, 1)
	s.Jobs.OnEnd(func(j Job) { ended <- j })
	// The caller's context ends as soon as Start returns, as when the user
	// leaves the tab: polling must not depend on it.
	startCtx, leave := context.WithCancel(ctx)
	if _, err := s.Start(startCtx, threeImages(), validForm(), StartOptions{}); err != nil {
		t.Fatal(err)
	}
	leave()
	select {
	case j := <-ended:
		if j.Status != bfl.StatusReady {
			t.Fatalf("ended as %+v", j)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the started job was not followed to its end")
	}
	var stored Job
	if err := store.Get(ctx, core.StoreJobs, "ft-2", &stored); err != nil || stored.Status != bfl.StatusReady {
		t.Errorf("stored job %+v %v", stored, err)
	}
}
