package finetuning

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// fakeAPI answers polls from a script per task id and records uploads.
type fakeAPI struct {
	mu      sync.Mutex
	script  map[string][]pollAnswer
	polled  []string // "poll:<url>" or "get:<id>"
	posted  []byte
	postErr error
	postRes bfl.AsyncResponse
}

type pollAnswer struct {
	res bfl.ResultResponse
	err error
}

func (f *fakeAPI) next(id string) (bfl.ResultResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.script[id]
	if len(s) == 0 {
		return bfl.ResultResponse{}, errors.New("script exhausted for " + id)
	}
	a := s[0]
	if len(s) > 1 {
		f.script[id] = s[1:]
	}
	return a.res, a.err
}

func (f *fakeAPI) Poll(ctx context.Context, u string) (bfl.ResultResponse, error) {
	f.mu.Lock()
	f.polled = append(f.polled, "poll:"+u)
	f.mu.Unlock()
	pu, _ := url.Parse(u)
	return f.next(pu.Query().Get("id"))
}

func (f *fakeAPI) Get(ctx context.Context, endpoint string, q url.Values, out any) error {
	f.mu.Lock()
	f.polled = append(f.polled, "get:"+endpoint+":"+q.Get("id"))
	f.mu.Unlock()
	r, err := f.next(q.Get("id"))
	if err != nil {
		return err
	}
	*out.(*bfl.ResultResponse) = r
	return nil
}

func (f *fakeAPI) PostJSON(ctx context.Context, endpoint string, body []byte, progress func(int64, int64), out any) error {
	f.posted = body
	if progress != nil {
		progress(int64(len(body))/2, int64(len(body)))
		progress(int64(len(body)), int64(len(body)))
	}
	if f.postErr != nil {
		return f.postErr
	}
	*out.(*bfl.AsyncResponse) = f.postRes
	return nil
}

func pct(x float64) *float64 { return &x }

func pending(p float64) pollAnswer {
	return pollAnswer{res: bfl.ResultResponse{Status: bfl.StatusPending, Progress: pct(p)}}
}

// testTracker runs on a fake clock: each Sleep advances it and records the delay.
func testTracker(api *fakeAPI, store core.Storage) (*Tracker, *[]time.Duration, *[]Job) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var delays []time.Duration
	var updates []Job
	var mu sync.Mutex
	tr := NewTracker(api, store)
	tr.Subscribe(func(j Job) { mu.Lock(); updates = append(updates, j); mu.Unlock() })
	tr.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tr.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		delays = append(delays, d)
		now = now.Add(d)
		return ctx.Err()
	}
	return tr, &delays, &updates
}

func TestFollowPollsWithBackoffToReady(t *testing.T) {
	api := &fakeAPI{script: map[string][]pollAnswer{"t1": {
		pending(0), pending(0.25), // progress as a fraction
		{err: &core.APIError{Status: 503, Message: "BFL is having trouble; retrying."}},
		pending(60), // and as a percentage
		pending(80), pending(90), pending(95), pending(99),
		{res: bfl.ResultResponse{Status: bfl.StatusReady, Result: json.RawMessage(`{"finetune_id":"t1"}`)}},
	}}}
	store := core.NewMemoryStorage()
	tr, delays, updates := testTracker(api, store)
	start := time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC)
	job, err := tr.Follow(context.Background(), Job{ID: "t1", Status: bfl.StatusPending, Started: start,
		PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=t1"})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != bfl.StatusReady || *job.Progress != 100 || job.Ended.IsZero() || job.LastError != "" {
		t.Fatalf("final job %+v", job)
	}
	if len(*delays) != 8 {
		t.Fatalf("%d sleeps, want 8", len(*delays))
	}
	for i, d := range *delays {
		base := DefaultMinDelay
		for range i {
			base = min(base*3/2, DefaultMaxDelay)
		}
		if d < base*8/10 || d > base*12/10 {
			t.Errorf("sleep %d = %v, want %v ±20%%", i, d, base)
		}
	}
	if (*delays)[7] < 12*time.Second {
		t.Errorf("backoff never grew toward 15s: %v", *delays)
	}
	ups := *updates
	if *ups[1].Progress != 25 || *ups[3].Progress != 60 {
		t.Errorf("progress not normalised to 0..100: %v %v", *ups[1].Progress, *ups[3].Progress)
	}
	if ups[2].LastError != "BFL is having trouble; retrying." || *ups[2].Progress != 25 {
		t.Errorf("a failed poll should keep progress and show the error: %+v", ups[2])
	}
	var stored Job
	if err := store.Get(context.Background(), core.StoreJobs, "t1", &stored); err != nil || stored.Status != bfl.StatusReady {
		t.Errorf("stored job %+v %v", stored, err)
	}
	if el := job.Elapsed(time.Now()); el != job.Ended.Sub(start).Round(time.Second) {
		t.Errorf("elapsed of a done job should stop at its end: %v", el)
	}
}

// A training still running never shows 100 %: a first 1 on BFL's 0-100
// scale reads as a whole fraction, and "still training (100%)" would
// contradict itself. Ready shows 100.
func TestRunningProgressStopsShortOf100(t *testing.T) {
	api := &fakeAPI{script: map[string][]pollAnswer{"t1": {
		pending(1), pending(2), {res: bfl.ResultResponse{Status: bfl.StatusReady, Result: json.RawMessage(`{"finetune_id":"t1"}`)}},
	}}}
	tr, _, updates := testTracker(api, core.NewMemoryStorage())
	job, err := tr.Follow(context.Background(), Job{ID: "t1", Status: bfl.StatusPending, PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=t1"})
	if err != nil || *job.Progress != 100 {
		t.Fatalf("final job %+v %v", job, err)
	}
	for _, u := range *updates {
		if !u.Done() && u.Progress != nil && *u.Progress > 99 {
			t.Errorf("a running training shown at %v%%", *u.Progress)
		}
	}
}

func TestFollowGivesUpOnUnknownStatusAfterDeadline(t *testing.T) {
	api := &fakeAPI{script: map[string][]pollAnswer{"t2": {
		{res: bfl.ResultResponse{Status: "Queued"}},
		pending(10), // known again: the clock restarts
		{res: bfl.ResultResponse{Status: "Queued"}},
	}}}
	tr, delays, _ := testTracker(api, core.NewMemoryStorage())
	tr.UnknownDeadline = time.Minute
	job, err := tr.Follow(context.Background(), Job{ID: "t2", Status: bfl.StatusPending})
	if err != nil {
		t.Fatal(err)
	}
	if !job.Done() || job.Status != "Queued" || !strings.Contains(job.LastError, `"Queued"`) {
		t.Fatalf("job %+v", job)
	}
	var total time.Duration
	for _, d := range (*delays)[2:] {
		total += d
	}
	if total < time.Minute || total > time.Minute+20*time.Second {
		t.Errorf("gave up after %v of unknown status, want about the 1m deadline", total)
	}
	// Without a polling URL, polls go to get_result by id.
	if !strings.HasPrefix(api.polled[0], "get:get_result:t2") {
		t.Errorf("polled %v", api.polled[:1])
	}
}

func TestFollowExplainsFailures(t *testing.T) {
	api := &fakeAPI{script: map[string][]pollAnswer{
		"m": {{res: bfl.ResultResponse{Status: bfl.StatusRequestModerated, Details: map[string]any{"Moderation Reasons": []any{"Derivative"}}}}},
		"e": {{res: bfl.ResultResponse{Status: bfl.StatusError}}},
	}}
	tr, _, _ := testTracker(api, core.NewMemoryStorage())
	m, _ := tr.Follow(context.Background(), Job{ID: "m"})
	if !strings.Contains(m.LastError, "moderation") || !strings.Contains(m.LastError, "Derivative") {
		t.Errorf("moderated: %q", m.LastError)
	}
	e, _ := tr.Follow(context.Background(), Job{ID: "e"})
	if e.Status != bfl.StatusError || !strings.Contains(e.LastError, "failed") {
		t.Errorf("error: %+v", e)
	}
}

func TestResumeFollowsOnlyUnfinishedJobs(t *testing.T) {
	ctx := context.Background()
	store := core.NewMemoryStorage()
	api := &fakeAPI{script: map[string][]pollAnswer{
		"run": {pending(50), {res: bfl.ResultResponse{Status: bfl.StatusReady}}},
	}}
	tr, _, _ := testTracker(api, store)
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, j := range []Job{
		{ID: "done", Status: bfl.StatusReady, Started: old, Ended: old.Add(time.Hour)},
		{ID: "run", Status: bfl.StatusPending, Started: old.Add(time.Hour), PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=run"},
	} {
		if err := tr.Save(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range api.polled {
		if strings.Contains(p, "done") {
			t.Errorf("a finished job was polled: %v", api.polled)
		}
	}
	jobs, err := tr.Jobs(ctx)
	if err != nil || len(jobs) != 2 || jobs[0].ID != "run" || jobs[0].Status != bfl.StatusReady {
		t.Fatalf("jobs after resume: %+v %v", jobs, err)
	}
}

// One damaged record does not stop the following of the others, and is
// reported: a reload must not leave every paid training unwatched.
func TestResumeFollowsPastAnUnreadableRecord(t *testing.T) {
	ctx := context.Background()
	store := core.NewMemoryStorage()
	api := &fakeAPI{script: map[string][]pollAnswer{
		"run": {pending(50), {res: bfl.ResultResponse{Status: bfl.StatusReady}}},
	}}
	tr, _, _ := testTracker(api, store)
	if err := tr.Save(ctx, Job{ID: "run", Status: bfl.StatusPending, Started: time.Now(), PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=run"}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, core.StoreJobs, "broken", "not a job"); err != nil {
		t.Fatal(err)
	}
	err := tr.Resume(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 saved training record") {
		t.Errorf("Resume: %v; want the unreadable record reported", err)
	}
	jobs, _ := tr.Jobs(ctx)
	if len(jobs) != 1 || jobs[0].Status != bfl.StatusReady {
		t.Fatalf("jobs after resume: %+v; want the readable one followed to Ready", jobs)
	}
}

func TestFollowStopsWithContextAndSkipsDuplicates(t *testing.T) {
	api := &fakeAPI{script: map[string][]pollAnswer{"x": {pending(1)}}}
	tr, _, _ := testTracker(api, core.NewMemoryStorage())
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	tr.Sleep = func(ctx context.Context, d time.Duration) error {
		close(block)
		<-ctx.Done()
		return ctx.Err()
	}
	done := make(chan error, 1)
	go func() { _, err := tr.Follow(ctx, Job{ID: "x"}); done <- err }()
	<-block
	// A second follower of the same job returns at once instead of double-polling.
	if _, err := tr.Follow(ctx, Job{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not stop with its context")
	}
	if len(api.polled) != 1 {
		t.Errorf("polled %d times, want 1", len(api.polled))
	}
}

func TestSubscribersHearChangesUntilTheyCancel(t *testing.T) {
	api := &fakeAPI{script: map[string][]pollAnswer{"s": {
		pending(10), pending(50), {res: bfl.ResultResponse{Status: bfl.StatusReady}},
	}}}
	tr, _, all := testTracker(api, core.NewMemoryStorage())
	var once []Job
	var cancelOnce func()
	cancelOnce = tr.Subscribe(func(j Job) {
		once = append(once, j)
		cancelOnce() // from inside its own call: the lock is not held
	})
	var ends []Job
	tr.OnEnd(func(j Job) { t.Error("a replaced end handler was called") })
	tr.OnEnd(func(j Job) { ends = append(ends, j) })
	if _, err := tr.Follow(t.Context(), Job{ID: "s", PollingURL: "https://api.us1.bfl.ai/v1/get_result?id=s"}); err != nil {
		t.Fatal(err)
	}
	cancelOnce() // a second cancel is harmless
	if len(*all) != 3 || (*all)[2].Status != bfl.StatusReady {
		t.Fatalf("the staying subscriber saw %d changes, want all 3", len(*all))
	}
	if len(once) != 1 || *once[0].Progress != 10 {
		t.Errorf("the cancelled subscriber saw %d changes, want only the first", len(once))
	}
	if len(ends) != 1 || ends[0].ID != "s" || ends[0].Status != bfl.StatusReady {
		t.Errorf("end handler saw %+v, want the Ready job once", ends)
	}
}
