package inference

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// ErrDeadline is returned when a task is still running when the poller gives up.
var ErrDeadline = errors.New("the task did not finish in time")

// Poller polls a task until a terminal status. BFL's own examples poll images
// every 0.5 s; the interval grows from there so a slow task costs few requests.
type Poller struct {
	Initial  time.Duration // first wait, 500 ms by default
	Max      time.Duration // longest wait, 5 s by default
	Factor   float64       // growth per poll, 1.5 by default
	Deadline time.Duration // give up after this long, 15 min by default
	// Sleep waits or returns the context's error; tests replace it to run without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

func (p Poller) withDefaults() Poller {
	if p.Initial <= 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Second
	}
	if p.Factor < 1 {
		p.Factor = 1.5
	}
	if p.Deadline <= 0 {
		p.Deadline = 15 * time.Minute
	}
	if p.Sleep == nil {
		p.Sleep = core.Sleep
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return p
}

// Delays returns the waits before each poll: Initial growing by Factor up to Max,
// each with up to ±20 % jitter so many tasks do not poll in step.
func (p Poller) delay(i int) time.Duration {
	d := float64(p.Initial)
	for range i {
		d *= p.Factor
		if d >= float64(p.Max) {
			d = float64(p.Max)
			break
		}
	}
	return time.Duration(d * (0.8 + 0.4*rand.Float64()))
}

// Wait polls until the task reaches a terminal status and returns that answer.
// Pending and any unknown status count as running; each answer still running
// is passed to progress (with progress normalised to 0..99).
//
// A poll that fails counts as running too, and is passed to progress as its
// error: the task was submitted and paid for, and an outage of the proxy or
// of BFL for longer than the client's own retries must not end the wait for
// its image. Only the deadline or the context does.
func (p Poller) Wait(ctx context.Context, poll func(context.Context) (bfl.ResultResponse, error), progress func(bfl.ResultResponse, error)) (bfl.ResultResponse, error) {
	p = p.withDefaults()
	start := p.Now()
	for i := 0; ; i++ {
		if err := p.Sleep(ctx, p.delay(i)); err != nil {
			return bfl.ResultResponse{}, fmt.Errorf("poll: %w", err)
		}
		r, err := poll(ctx)
		if ctx.Err() != nil {
			return r, fmt.Errorf("poll: %w", ctx.Err())
		}
		if err == nil {
			r.Progress = r.Percent()
			if r.Status.Terminal() {
				return r, nil
			}
		}
		if progress != nil {
			progress(r, err)
		}
		if p.Now().Sub(start) >= p.Deadline {
			if err != nil {
				return r, fmt.Errorf("poll: failing after %v (%w): %w", p.Deadline, err, ErrDeadline)
			}
			return r, fmt.Errorf("poll: still %q after %v: %w", r.Status, p.Deadline, ErrDeadline)
		}
	}
}
