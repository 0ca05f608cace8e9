package finetuning

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// Job is a finetune started from this browser, as kept in core.StoreJobs.
type Job struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	TriggerWord string     `json:"trigger_word"`
	Mode        string     `json:"mode"`
	Type        string     `json:"finetune_type"`
	Status      bfl.Status `json:"status"`
	// Progress is 0..100, nil while BFL reports none.
	Progress   *float64  `json:"progress,omitempty"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended,omitzero"`
	PollingURL string    `json:"polling_url,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// UnknownSince is when BFL began answering a status this app does not
	// know; polling gives up once that lasts past the tracker's deadline.
	UnknownSince time.Time `json:"unknown_since,omitzero"`
}

// Done reports whether polling has stopped for good: a terminal status, or
// an unknown status that outlasted the deadline (Ended set either way).
func (j Job) Done() bool { return j.Status.Terminal() || !j.Ended.IsZero() }

// Elapsed is the training time so far, or in total once done.
func (j Job) Elapsed(now time.Time) time.Duration {
	end := now
	if !j.Ended.IsZero() {
		end = j.Ended
	}
	return end.Sub(j.Started).Round(time.Second)
}

// resultSource is the part of the API client polling needs.
type resultSource interface {
	Poll(ctx context.Context, pollingURL string) (bfl.ResultResponse, error)
	Get(ctx context.Context, endpoint string, query url.Values, out any) error
}

// records is the part of storage the jobs and the draft need.
type records interface {
	Put(ctx context.Context, store, key string, v any) error
	Get(ctx context.Context, store, key string, v any) error
	List(ctx context.Context, store string) ([]json.RawMessage, error)
	Delete(ctx context.Context, store, key string) error
}

// Polling cadence: training takes minutes to hours, so a few seconds between
// polls is prompt enough, and backing off to 15 s keeps a long training from
// costing thousands of requests.
const (
	DefaultMinDelay        = 2 * time.Second
	DefaultMaxDelay        = 15 * time.Second
	DefaultUnknownDeadline = 30 * time.Minute
)

// Tracker polls jobs to a terminal status and keeps their records current.
// Polling does not depend on anyone listening: components come and go with
// the tabs, and subscribe while they show the jobs.
type Tracker struct {
	api   resultSource
	store records

	MinDelay, MaxDelay time.Duration
	UnknownDeadline    time.Duration
	Now                func() time.Time
	Sleep              func(context.Context, time.Duration) error

	mu    sync.Mutex // guards onEnd
	onEnd func(Job)
	// following holds the jobs being polled, so two followers never poll
	// the same one.
	following core.Claims

	subs core.Listeners[Job]
}

// NewTracker returns a tracker with the default cadence.
func NewTracker(api resultSource, store records) *Tracker {
	return &Tracker{
		api: api, store: store,
		MinDelay: DefaultMinDelay, MaxDelay: DefaultMaxDelay, UnknownDeadline: DefaultUnknownDeadline,
		Now: time.Now, Sleep: core.Sleep,
	}
}

// Subscribe calls fn with every change of a followed job, from the polling
// goroutine, until cancel is called. Calling cancel twice is harmless.
func (t *Tracker) Subscribe(fn func(Job)) (cancel func()) {
	return t.subs.Add(fn)
}

// OnEnd sets the one function told, from the polling goroutine, when a
// followed job ends. It is a single slot rather than a subscription so that
// a tab may install it on every mount (a fresh context each time) and an
// end is still announced once, whichever tab is open.
func (t *Tracker) OnEnd(fn func(Job)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onEnd = fn
}

// publish hands a change to the subscribers, and an end to the end handler.
// They are called without the lock, so they may subscribe or cancel.
func (t *Tracker) publish(j Job) {
	t.mu.Lock()
	end := t.onEnd
	t.mu.Unlock()
	t.subs.Tell(j)
	if j.Done() && end != nil {
		end(j)
	}
}

// Save writes the job's record.
func (t *Tracker) Save(ctx context.Context, j Job) error {
	if err := t.store.Put(ctx, core.StoreJobs, j.ID, j); err != nil {
		return fmt.Errorf("save job %s: %w", j.ID, err)
	}
	return nil
}

// Jobs returns every stored job, newest first. A record that cannot be
// read is reported in the error, and the others are still returned: one
// damaged record must not hide, or stop the following of, every training.
func (t *Tracker) Jobs(ctx context.Context) ([]Job, error) {
	raws, err := t.store.List(ctx, core.StoreJobs)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs := make([]Job, 0, len(raws))
	bad := 0
	for _, raw := range raws {
		var j Job
		if err := json.Unmarshal(raw, &j); err != nil {
			bad++
			continue
		}
		jobs = append(jobs, j)
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].Started.After(jobs[b].Started) })
	if bad > 0 {
		return jobs, fmt.Errorf("%d saved training record(s) could not be read and are not shown", bad)
	}
	return jobs, nil
}

// Resume follows every stored job that is not done, concurrently, and
// returns when all have finished or ctx ends: this is what brings polling
// back after a reload.
func (t *Tracker) Resume(ctx context.Context) error {
	jobs, err := t.Jobs(ctx)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if j.Done() {
			continue
		}
		wg.Go(func() { _, _ = t.Follow(ctx, j) })
	}
	wg.Wait()
	return err
}

// Follow polls one job until it is done or ctx ends, saving and publishing
// each change. A job already followed elsewhere is left to that follower.
func (t *Tracker) Follow(ctx context.Context, j Job) (Job, error) {
	release, ok := t.following.Claim(j.ID)
	if !ok {
		return j, nil
	}
	defer release()

	delay := t.MinDelay
	for !j.Done() {
		res, err := t.poll(ctx, j)
		if ctx.Err() != nil {
			return j, ctx.Err()
		}
		if err != nil {
			// The proxy already retried; keep the error visible and try
			// again later rather than abandon a paid training.
			j.LastError = core.UserMessage(err)
		} else {
			j = t.apply(j, res)
		}
		if err := t.Save(ctx, j); err != nil {
			j.LastError = core.UserMessage(err)
		}
		t.publish(j)
		if j.Done() {
			break
		}
		if err := t.Sleep(ctx, jitter(delay)); err != nil {
			return j, err
		}
		delay = min(delay*3/2, t.MaxDelay)
	}
	return j, nil
}

func (t *Tracker) poll(ctx context.Context, j Job) (bfl.ResultResponse, error) {
	if j.PollingURL != "" {
		return t.api.Poll(ctx, j.PollingURL)
	}
	// Without a polling URL (a webhook submit), the regional host answers by id.
	var r bfl.ResultResponse
	err := t.api.Get(ctx, "get_result", url.Values{"id": {j.ID}}, &r)
	return r, err
}

func (t *Tracker) apply(j Job, r bfl.ResultResponse) Job {
	now := t.Now()
	j.LastError = ""
	j.Status = r.Status
	if p := r.Percent(); p != nil {
		j.Progress = p
	}
	switch {
	case r.Status.Terminal():
		j.Ended = now
		j.UnknownSince = time.Time{}
		if r.Status == bfl.StatusReady {
			full := 100.0
			j.Progress = &full
		} else {
			j.LastError = terminalMessage(r)
		}
	case !r.Status.Known():
		if j.UnknownSince.IsZero() {
			j.UnknownSince = now
		}
		if now.Sub(j.UnknownSince) >= t.UnknownDeadline {
			j.Ended = now
			j.LastError = fmt.Sprintf("BFL kept reporting the unknown status %q for %s; polling stopped. Check the Models tab later.",
				r.Status, t.UnknownDeadline)
		}
	default:
		j.UnknownSince = time.Time{}
	}
	return j
}

// terminalMessage explains a failed training in words, with BFL's details.
func terminalMessage(r bfl.ResultResponse) string {
	var msg string
	switch r.Status {
	case bfl.StatusRequestModerated, bfl.StatusContentModerated:
		msg = "BFL's moderation refused this training."
	case bfl.StatusTaskNotFound:
		msg = "BFL no longer knows this task; it may have expired."
	default:
		msg = "The training failed at BFL."
	}
	if len(r.Details) > 0 {
		if b, err := json.Marshal(r.Details); err == nil {
			msg += " Details: " + string(b)
		}
	}
	return msg
}

// jitter spreads polls by ±20% so many tabs or jobs do not poll in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
