package sim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// Each marker in a prompt does what the package documentation says.
func TestFaultMarkersInPrompt(t *testing.T) {
	e := newTransportEnv(t, Config{GenerateDuration: Duration(3 * time.Second)})
	ft := e.readyFinetune(nil)
	gen := func(prompt string) reply {
		return e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft, "prompt": prompt})
	}
	submitted := func(prompt string) bfl.AsyncResponse {
		return e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft, "prompt": prompt})
	}

	t.Run("error", func(t *testing.T) {
		a := submitted("cat [sim:error]")
		if st := e.result(a.PollingURL).Status; st != bfl.StatusPending {
			t.Fatalf("before the end: %s", st)
		}
		e.clock.Advance(3 * time.Second)
		res := e.result(a.PollingURL)
		if res.Status != bfl.StatusError || res.Details["error"] == nil || res.Result != nil && string(res.Result) != "null" {
			t.Fatalf("%s %v %s", res.Status, res.Details, res.Result)
		}
	})
	t.Run("request-moderated", func(t *testing.T) {
		res := e.result(submitted("cat [sim:request-moderated]").PollingURL)
		if res.Status != bfl.StatusRequestModerated || moderationReasons(res) == 0 {
			t.Fatalf("%s %v", res.Status, res.Details)
		}
	})
	t.Run("content-moderated", func(t *testing.T) {
		a := submitted("[sim:content-moderated] cat")
		e.clock.Advance(3 * time.Second)
		res := e.result(a.PollingURL)
		if res.Status != bfl.StatusContentModerated || moderationReasons(res) == 0 {
			t.Fatalf("%s %v", res.Status, res.Details)
		}
	})
	t.Run("500", func(t *testing.T) {
		before := e.credits()
		if r := gen("cat [sim:500]"); r.status != http.StatusInternalServerError || r.apiError(t).Detail == "" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if e.credits() != before {
			t.Fatal("a 500 was charged")
		}
	})
	t.Run("429", func(t *testing.T) {
		if r := gen("cat [sim:429]"); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
			t.Fatalf("%d %q %s", r.status, r.header.Get("Retry-After"), r.body)
		}
	})
	t.Run("422", func(t *testing.T) {
		r := gen("cat [sim:422=finetune_strength]")
		if r.status != http.StatusUnprocessableEntity || r.apiError(t).Field() != "finetune_strength" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("unknown marker", func(t *testing.T) {
		r := gen("cat [sim:eror]")
		if err := r.apiError(t); r.status != http.StatusUnprocessableEntity || err.Field() != "prompt" ||
			!strings.Contains(err.Issues[0].Msg, "[sim:eror]") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("expire", func(t *testing.T) {
		a := submitted("cat [sim:expire]")
		e.clock.Advance(3 * time.Second)
		res := e.result(a.PollingURL)
		if res.Status != bfl.StatusReady {
			t.Fatalf("%s", res.Status)
		}
		if img := e.fetchSample(res); img.status != http.StatusNotFound {
			t.Fatalf("expired sample: %d", img.status)
		}
	})
	t.Run("slow", func(t *testing.T) {
		start := time.Now()
		a := submitted("cat [sim:slow=0.2]")
		if took := time.Since(start); took < 200*time.Millisecond || a.ID == "" {
			t.Fatalf("answered after %v", took)
		}
	})
	t.Run("combined", func(t *testing.T) {
		a := submitted("[sim:slow=50ms][sim:error] cat")
		e.clock.Advance(3 * time.Second)
		if st := e.result(a.PollingURL).Status; st != bfl.StatusError {
			t.Fatalf("%s", st)
		}
	})
}

// A client that gives up on a slow submit leaves nothing behind.
func TestSlowSubmitHonoursCancel(t *testing.T) {
	for name, e := range map[string]*testEnv{"http": newHTTPEnv(t, Config{}), "transport": newTransportEnv(t, Config{})} {
		t.Run(name, func(t *testing.T) {
			before := e.credits()
			body := `{"file_data":"` + datasetZIP(t, 1, false) + `","finetune_comment":"[sim:slow=300ms]","mode":"style"}`
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.api+"/v1/finetune", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := e.client.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("answered %d", resp.StatusCode)
			}
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
				t.Fatalf("err %v after %v", err, time.Since(start))
			}
			// Had the handler ignored the cancel, it would create and charge at 300 ms.
			time.Sleep(700 * time.Millisecond)
			if e.credits() != before || len(e.finetuneIDs()) != 0 {
				t.Fatal("a cancelled submit created or charged a finetune")
			}
		})
	}
}

// Markers in finetune_comment steer training the same way.
func TestFaultMarkersInFinetuneComment(t *testing.T) {
	e := newHTTPEnv(t, Config{TrainDuration: Duration(time.Minute)})
	train := func(comment string) reply {
		return e.post("/v1/finetune", map[string]any{"file_data": datasetZIP(t, 2, false), "finetune_comment": comment, "mode": "product"})
	}
	var failed, moderated, contentModerated bfl.AsyncResponse
	train("shoe [sim:error]").decode(t, &failed)
	train("shoe [sim:request-moderated]").decode(t, &moderated)
	train("shoe [sim:content-moderated]").decode(t, &contentModerated)
	if st := e.result(moderated.PollingURL).Status; st != bfl.StatusRequestModerated {
		t.Fatalf("request moderated: %s", st)
	}
	e.clock.Advance(time.Minute)
	if res := e.result(failed.PollingURL); res.Status != bfl.StatusError || res.Details["error"] == nil {
		t.Fatalf("error: %s %v", res.Status, res.Details)
	}
	if st := e.result(contentModerated.PollingURL).Status; st != bfl.StatusContentModerated {
		t.Fatalf("content moderated: %s", st)
	}
	if r := train("shoe [sim:422=iterations]"); r.status != http.StatusUnprocessableEntity || r.apiError(t).Field() != "iterations" {
		t.Fatalf("422 marker: %d %s", r.status, r.body)
	}
	if r := train("shoe [sim:500]"); r.status != http.StatusInternalServerError {
		t.Fatalf("500 marker: %d", r.status)
	}
	if r := train("shoe [sim:nope]"); r.status != http.StatusUnprocessableEntity || r.apiError(t).Field() != "finetune_comment" {
		t.Fatalf("unknown marker: %d %s", r.status, r.body)
	}
}

func TestParseFaults(t *testing.T) {
	f, err := parseFaults("a [sim:slow=2s] b [sim:expire] [sim:422=seed]")
	if err != nil || f.slow != 2*time.Second || !f.expire || f.invalidField != "seed" || f.fail {
		t.Fatalf("%+v %v", f, err)
	}
	if f, err := parseFaults("[sim:slow=10h]"); err != nil || f.slow != maxSlow {
		t.Fatalf("slow is not capped: %+v %v", f, err)
	}
	for _, bad := range []string{"[sim:slow=fast]", "[sim:slow]", "[sim:error=1]", "[sim:422=]", "[sim:]", "[sim:slow=-1s]"} {
		if _, err := parseFaults(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if f, err := parseFaults("no markers [sim error] here"); err != nil || f != (faults{}) {
		t.Fatalf("%+v %v", f, err)
	}
}

func moderationReasons(res bfl.ResultResponse) int {
	reasons, _ := res.Details["Moderation Reasons"].([]any)
	return len(reasons)
}

func (e *testEnv) finetuneIDs() []string {
	e.t.Helper()
	var list bfl.MyFinetunes
	r := e.get("/v1/my_finetunes")
	if err := json.Unmarshal(r.body, &list); err != nil {
		e.t.Fatalf("my_finetunes %s: %v", r.body, err)
	}
	return list.Finetunes
}
