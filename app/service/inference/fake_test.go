package inference

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// fakeBFL plays the proxy for the generation endpoints. A task's outcome is
// chosen by a marker in its prompt; it answers Pending for `pending` polls
// first. It counts tasks in flight (submitted, not yet answered terminal).
type fakeBFL struct {
	pending int

	mu        sync.Mutex
	next      int
	tasks     map[string]*fakeTask
	posts     []map[string]any
	inFlight  int
	peak      int
	images    int
	postError error
}

type fakeTask struct {
	body  map[string]any
	polls int
}

func newFakeBFL(pending int) *fakeBFL {
	return &fakeBFL{pending: pending, tasks: map[string]*fakeTask{}}
}

func (f *fakeBFL) Post(ctx context.Context, endpoint string, body any, out any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.postError != nil {
		return f.postError
	}
	// Round-trip through JSON, as the real client does.
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	f.posts = append(f.posts, m)
	f.next++
	id := fmt.Sprintf("task-%03d", f.next)
	f.tasks[id] = &fakeTask{body: m}
	f.inFlight++
	f.peak = max(f.peak, f.inFlight)
	cost := 6.0
	return json.Unmarshal([]byte(fmt.Sprintf(`{"id":%q,"polling_url":"https://api.sim.test/v1/get_result?id=%s","cost":%v}`, id, id, cost)), out)
}

func (f *fakeBFL) Get(ctx context.Context, endpoint string, q url.Values, out any) error {
	if endpoint != "get_result" {
		return fmt.Errorf("unexpected GET %s", endpoint)
	}
	r, err := f.result(q.Get("id"))
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(r)
	return json.Unmarshal(raw, out)
}

func (f *fakeBFL) Poll(ctx context.Context, pollingURL string) (bfl.ResultResponse, error) {
	u, err := url.Parse(pollingURL)
	if err != nil {
		return bfl.ResultResponse{}, err
	}
	return f.result(u.Query().Get("id"))
}

func (f *fakeBFL) result(id string) (bfl.ResultResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return bfl.ResultResponse{ID: id, Status: bfl.StatusTaskNotFound}, nil
	}
	t.polls++
	prompt, _ := t.body["prompt"].(string)
	if t.polls <= f.pending {
		p := float64(t.polls) / float64(f.pending+1) // BFL sends 0..1 at times
		st := bfl.StatusPending
		if strings.Contains(prompt, "[unknown]") {
			st = "Queued"
		}
		return bfl.ResultResponse{ID: id, Status: st, Progress: &p}, nil
	}
	r := bfl.ResultResponse{ID: id}
	switch {
	case strings.Contains(prompt, "[moderated]"):
		r.Status = bfl.StatusContentModerated
		r.Details = map[string]any{"Moderation Reasons": []any{"Derivative Works"}}
	case strings.Contains(prompt, "[request-moderated]"):
		r.Status = bfl.StatusRequestModerated
	case strings.Contains(prompt, "[error]"):
		r.Status = bfl.StatusError
		r.Details = map[string]any{"message": "GPU fell over"}
	case strings.Contains(prompt, "[gone]"):
		r.Status = bfl.StatusTaskNotFound
	case strings.Contains(prompt, "[forever]"):
		p := 0.5
		return bfl.ResultResponse{ID: id, Status: bfl.StatusPending, Progress: &p}, nil
	default:
		r.Status = bfl.StatusReady
		seed := int64(4242)
		sample := "https://delivery.sim.test/" + id + ".png"
		if strings.Contains(prompt, "[expired]") {
			sample = "https://delivery.sim.test/expired-" + id + ".png"
		}
		raw, _ := json.Marshal(bfl.ImageResult{Sample: sample, Prompt: prompt, Seed: &seed})
		r.Result = raw
	}
	f.inFlight--
	return r, nil
}

func (f *fakeBFL) Image(ctx context.Context, sampleURL string) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(sampleURL, "expired") {
		return nil, "", &core.APIError{Endpoint: "image", Status: 404, Message: "gone"}
	}
	f.images++
	return []byte("\x89PNG\r\n\x1a\n" + sampleURL), "image/png", nil
}
