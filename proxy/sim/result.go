package sim

import (
	"net/http"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// resultBody is get_result's answer. Unlike bfl.ResultResponse it writes
// result and details as null when empty, as BFL does.
type resultBody struct {
	ID       string         `json:"id"`
	Status   bfl.Status     `json:"status"`
	Result   any            `json:"result"`
	Progress *float64       `json:"progress"`
	Details  map[string]any `json:"details"`
}

// getResult reports a task. Unknown and forgotten ids answer 200 with the
// status "Task not found", as BFL does: it is a status, not an HTTP error.
func (s *Sim) getResult(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	now := s.cfg.Now()
	s.mu.Lock()
	t, ok := s.tasks[id]
	if !ok {
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, resultBody{ID: id, Status: bfl.StatusTaskNotFound})
		return
	}
	status, progress := t.state(now)
	out := resultBody{ID: id, Status: status, Progress: progress}
	switch {
	case status == bfl.StatusReady && t.kind == kindTraining:
		out.Result = bfl.FinetuneResult{FinetuneID: id}
	case status == bfl.StatusReady:
		out.Result = s.imageResultLocked(now, t)
	case status != bfl.StatusPending:
		out.Details = t.details
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// imageResultLocked publishes the task's sample on its first Ready poll. A
// link that is already dead is handed out but never stored.
func (s *Sim) imageResultLocked(now time.Time, t *task) bfl.ImageResult {
	if t.sample == "" {
		t.sample = newToken() + "." + t.image.format
		if now.Before(t.sampleExpires(s.cfg.SampleTTL.D())) {
			s.samples[t.sample] = t
		}
	}
	seed := t.image.seed
	start, end := unixSeconds(t.created), unixSeconds(t.readyAt)
	duration := end - start
	return bfl.ImageResult{
		Sample:    s.cfg.DeliveryBase + "/delivery/" + t.sample,
		Prompt:    t.image.prompt,
		Seed:      &seed,
		StartTime: &start,
		EndTime:   &end,
		Duration:  &duration,
	}
}

func (s *Sim) getCredits(w http.ResponseWriter) {
	s.mu.Lock()
	credits := s.credits
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, bfl.Credits{Credits: credits})
}
