package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

func TestBodyOverCap413(t *testing.T) {
	e := newTransportEnv(t, Config{})
	e.sim.maxBody = 1 << 20
	body := `{"file_data":"` + strings.Repeat("A", 2<<20) + `","finetune_comment":"x","mode":"style"}`
	r := e.post("/v1/finetune", []byte(body))
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.apiError(t).Detail, "too large") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// Racing submits never exceed MaxActive nor spend a credit twice: admission
// is one locked step.
func TestConcurrentSubmitsRespectLimit(t *testing.T) {
	const limit, callers = 10, 40
	e := newHTTPEnv(t, Config{MaxActive: limit, GenerateDuration: Duration(time.Hour)})
	ft := e.readyFinetune(nil)
	before := e.credits()
	body, _ := json.Marshal(map[string]any{"finetune_id": ft, "prompt": "race"})
	statuses := make(chan int, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, e.api+"/v1/flux-pro-1.1-ultra-finetuned", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusOK] != limit || counts[http.StatusTooManyRequests] != callers-limit {
		t.Fatalf("answers %v, want %d OK and %d 429", counts, limit, callers-limit)
	}
	if spent := before - e.credits(); spent != limit*7 {
		t.Fatalf("spent %v credits, want %d", spent, limit*7)
	}
}

// With webhook_url BFL answers {id, status, webhook_url}; the task is still
// pollable by id on the API host.
func TestWebhookAnswerShape(t *testing.T) {
	e := newHTTPEnv(t, Config{})
	ft := e.readyFinetune(nil)
	r := e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{
		"finetune_id": ft, "prompt": "x", "webhook_url": "https://example.com/hook"})
	var got map[string]any
	r.decode(t, &got)
	if r.status != http.StatusOK || got["status"] != string(bfl.StatusPending) ||
		got["webhook_url"] != "https://example.com/hook" || got["polling_url"] != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	id, _ := got["id"].(string)
	if st := e.result(e.api + "/v1/get_result?id=" + id).Status; st != bfl.StatusReady {
		t.Fatalf("by id: %s", st)
	}
}

// The background sweeper, not only a direct sweep call, frees expired
// samples; Close stops it and may be called twice.
func TestSweeperRunsInBackground(t *testing.T) {
	s := New(Config{SampleTTL: Duration(time.Second)}) // on the real clock: the sweeper must see time pass
	e := &testEnv{t: t, sim: s, api: "https://" + APIHost, client: &http.Client{Transport: s.Transport()}}
	ft := e.submit("finetune", map[string]any{"file_data": datasetZIP(t, 1, false), "finetune_comment": "x", "mode": "style"})
	res := e.result(e.submit("flux-pro-finetuned", map[string]any{"finetune_id": ft.ID, "width": 256, "height": 256}).PollingURL)
	if res.Status != bfl.StatusReady {
		t.Fatalf("%s", res.Status)
	}
	stored := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.samples)
	}
	if stored() != 1 {
		t.Fatalf("%d samples stored", stored())
	}
	deadline := time.Now().Add(15 * time.Second)
	for stored() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never removed the expired sample")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Close()
	s.Close()
}
