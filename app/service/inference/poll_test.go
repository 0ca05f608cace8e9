package inference

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// fakeClock advances only when the poller sleeps, so backoff and deadlines are
// checked exactly and without waiting.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) poller(deadline time.Duration) Poller {
	return Poller{
		Deadline: deadline,
		Now:      func() time.Time { return c.now },
		Sleep: func(ctx context.Context, d time.Duration) error {
			c.sleeps = append(c.sleeps, d)
			c.now = c.now.Add(d)
			return ctx.Err()
		},
	}
}

func sequence(statuses ...bfl.Status) (func(context.Context) (bfl.ResultResponse, error), *int) {
	n := 0
	return func(context.Context) (bfl.ResultResponse, error) {
		st := statuses[min(n, len(statuses)-1)]
		n++
		p := 0.25 * float64(n)
		return bfl.ResultResponse{Status: st, Progress: &p}, nil
	}, &n
}

func TestPollerStopsOnEveryTerminalStatus(t *testing.T) {
	for _, st := range bfl.Statuses {
		if st == bfl.StatusPending {
			continue
		}
		clock := &fakeClock{}
		poll, n := sequence(bfl.StatusPending, st)
		var seen []float64
		r, err := clock.poller(time.Minute).Wait(context.Background(), poll, func(r bfl.ResultResponse, _ error) { seen = append(seen, *r.Progress) })
		if err != nil || r.Status != st || *n != 2 {
			t.Errorf("%s: status %q after %d polls, err %v", st, r.Status, *n, err)
		}
		if len(seen) != 1 || seen[0] != 25 {
			t.Errorf("%s: progress reports %v, want [25] (normalised to 0..100)", st, seen)
		}
	}
}

// A task still running is never reported at 100 %.
func TestPollerReportsRunningProgressShortOf100(t *testing.T) {
	clock := &fakeClock{}
	one := 1.0
	polls := 0
	var seen []float64
	_, err := clock.poller(time.Minute).Wait(context.Background(), func(context.Context) (bfl.ResultResponse, error) {
		polls++
		if polls == 1 {
			return bfl.ResultResponse{Status: bfl.StatusPending, Progress: &one}, nil
		}
		return bfl.ResultResponse{Status: bfl.StatusReady}, nil
	}, func(r bfl.ResultResponse, _ error) { seen = append(seen, *r.Progress) })
	if err != nil || len(seen) != 1 || seen[0] != 99 {
		t.Fatalf("%v, progress %v; want a running 1 shown as 99", err, seen)
	}
}

func TestPollerTreatsUnknownStatusAsRunning(t *testing.T) {
	clock := &fakeClock{}
	poll, n := sequence("Queued", "Processing", "Pending", bfl.StatusReady)
	updates := 0
	r, err := clock.poller(time.Minute).Wait(context.Background(), poll, func(bfl.ResultResponse, error) { updates++ })
	if err != nil || r.Status != bfl.StatusReady || *n != 4 || updates != 3 {
		t.Fatalf("got %q after %d polls (%d updates), err %v", r.Status, *n, updates, err)
	}
}

func TestPollerBacksOffWithJitterUpToMax(t *testing.T) {
	clock := &fakeClock{}
	poll, _ := sequence(bfl.StatusPending)
	_, err := clock.poller(2*time.Minute).Wait(context.Background(), poll, nil)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("want ErrDeadline, got %v", err)
	}
	s := clock.sleeps
	if s[0] < 400*time.Millisecond || s[0] > 600*time.Millisecond {
		t.Errorf("first wait %v, want 0.5 s ± 20 %%", s[0])
	}
	// Base delays 0.5, 0.75, 1.125 ... s: after two steps the growth beats the jitter.
	for i := 2; i < 6; i++ {
		if s[i] <= s[i-2] {
			t.Errorf("wait %d (%v) did not grow past wait %d (%v)", i, s[i], i-2, s[i-2])
		}
	}
	for i, d := range s {
		if d > 6*time.Second {
			t.Errorf("wait %d is %v, above the 5 s cap plus jitter", i, d)
		}
	}
	var total time.Duration
	for _, d := range s {
		total += d
	}
	if total < 2*time.Minute || total > 2*time.Minute+6*time.Second {
		t.Errorf("gave up after %v, want the 2 min deadline", total)
	}
}

func TestPollerStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := &fakeClock{}
	poll, _ := sequence(bfl.StatusPending)
	_, err := clock.poller(time.Hour).Wait(ctx, poll, func(bfl.ResultResponse, error) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// A failed poll does not end the wait: the task is paid for, and an outage
// longer than the client's own retries must not cost its image. The
// failures are reported, and polling goes on to the answer.
func TestPollerKeepsPollingThroughFailures(t *testing.T) {
	boom := errors.New("proxy down")
	clock := &fakeClock{}
	polls := 0
	var reported []error
	r, err := clock.poller(time.Hour).Wait(context.Background(), func(context.Context) (bfl.ResultResponse, error) {
		polls++
		if polls <= 5 {
			return bfl.ResultResponse{}, boom
		}
		return bfl.ResultResponse{Status: bfl.StatusReady}, nil
	}, func(_ bfl.ResultResponse, err error) { reported = append(reported, err) })
	if err != nil || r.Status != bfl.StatusReady || polls != 6 {
		t.Fatalf("after 5 failed polls: %v %q after %d polls; want Ready on the 6th", err, r.Status, polls)
	}
	if len(reported) != 5 || !errors.Is(reported[0], boom) {
		t.Errorf("reported %v; want the 5 failures", reported)
	}
}

// Failures that last past the deadline end the wait as the deadline, so
// the task stays Pending for Resume to take up again, with the cause.
func TestPollerFailingPastTheDeadlineIsADeadline(t *testing.T) {
	boom := errors.New("proxy down")
	clock := &fakeClock{}
	_, err := clock.poller(time.Minute).Wait(context.Background(), func(context.Context) (bfl.ResultResponse, error) {
		return bfl.ResultResponse{}, boom
	}, nil)
	if !errors.Is(err, ErrDeadline) || !errors.Is(err, boom) {
		t.Fatalf("got %v; want the deadline, naming the failure", err)
	}
}
