package sim

import (
	"math"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

type taskKind int

const (
	kindTraining taskKind = iota // a finetune; its id is the finetune id
	kindImage                    // a generation
)

// task is one submitted job. Its status is a function of the clock: Pending
// until readyAt, then its outcome, so no goroutine drives it.
type task struct {
	kind     taskKind
	created  time.Time
	readyAt  time.Time
	outcome  bfl.Status     // what Pending turns into at readyAt
	details  map[string]any // for Error and moderation outcomes; never changed once set
	image    imageSpec      // kindImage only
	expire   bool           // [sim:expire]: the sample dies the moment it exists
	sample   string         // file name under /delivery/, chosen at the first Ready poll
	finetune *finetune      // kindTraining only
}

// sampleExpires is when the task's sample link dies: SampleTTL after the
// task finished, like BFL's signed URLs, or at once with [sim:expire].
func (t *task) sampleExpires(ttl time.Duration) time.Time {
	if t.expire {
		return t.readyAt
	}
	return t.readyAt.Add(ttl)
}

// state reports the status and, while Pending, the progress as a 0–1 fraction
// that never reaches 1 before the task is done.
func (t *task) state(now time.Time) (bfl.Status, *float64) {
	if t.outcome == bfl.StatusRequestModerated {
		// Requests are moderated before any work starts.
		return t.outcome, nil
	}
	if now.Before(t.readyAt) {
		total := t.readyAt.Sub(t.created)
		p := 0.0
		if total > 0 {
			p = math.Floor(float64(now.Sub(t.created))/float64(total)*100) / 100
		}
		p = min(max(p, 0), 0.99)
		return bfl.StatusPending, &p
	}
	if t.outcome == bfl.StatusReady {
		done := 1.0
		return bfl.StatusReady, &done
	}
	return t.outcome, nil
}

// finetune is a trained (or training) model as my_finetunes and
// finetune_details report it.
type finetune struct {
	id      string
	created time.Time
	details map[string]any // never changed once the finetune is admitted
}

// imageSpec is everything the rendered picture depends on: equal specs give
// byte-identical files. It is all a sample keeps: the image is drawn again
// when it is fetched and not in the render cache.
type imageSpec struct {
	prompt        string
	seed          int64
	width, height int
	format        string // "jpeg" or "png"
}
