package models

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/core"
)

// account is an in-process stand-in for the proxy's finetune management
// endpoints, answering through a RoundTripper so the tests also run under
// Node, where no socket can be opened. It counts calls and concurrency.
type account struct {
	latency    time.Duration
	failDelete bool // delete_finetune answers 500

	mu        sync.Mutex
	ids       []string
	details   map[string]map[string]any
	status    map[string]string
	calls     map[string]int
	active    int
	maxActive int
}

func newAccount(latency time.Duration) *account {
	return &account{latency: latency, details: map[string]map[string]any{}, status: map[string]string{}, calls: map[string]int{}}
}

func (a *account) add(id, name, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	a.details[id] = map[string]any{
		"finetune_comment": name, "trigger_word": "TOK" + id, "mode": "character", "finetune_type": "lora",
		"lora_rank": 16.0, "iterations": 300.0, "learning_rate": 0.0001, "priority": "quality",
		"timestamp": fmt.Sprintf("2025-03-0%dT10:00:00Z", 1+len(a.ids)%9),
	}
	a.status[id] = status
}

func (a *account) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[path]
}

func (a *account) peak() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.maxActive
}

func (a *account) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls[r.URL.Path]++
	a.active++
	a.maxActive = max(a.maxActive, a.active)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.active--
		a.mu.Unlock()
	}()
	time.Sleep(a.latency)
	a.mu.Lock()
	defer a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	switch r.URL.Path {
	case "/api/v1/my_finetunes":
		enc.Encode(map[string]any{"finetunes": a.ids})
	case "/api/v1/finetune_details":
		d, ok := a.details[r.URL.Query().Get("finetune_id")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			enc.Encode(map[string]any{"detail": "Finetune not found"})
			return
		}
		enc.Encode(map[string]any{"finetune_details": d})
	case "/api/v1/get_result":
		id := r.URL.Query().Get("id")
		st, ok := a.status[id]
		if !ok {
			st = "Task not found"
		}
		res := map[string]any{"id": id, "status": st, "progress": nil}
		if st == "Pending" {
			res["progress"] = 0.4
		}
		enc.Encode(res)
	case "/api/v1/delete_finetune":
		if a.failDelete {
			w.WriteHeader(http.StatusInternalServerError)
			enc.Encode(map[string]any{"detail": "Internal error"})
			return
		}
		var body struct {
			ID string `json:"finetune_id"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if _, ok := a.details[body.ID]; !ok {
			w.WriteHeader(http.StatusNotFound)
			enc.Encode(map[string]any{"detail": "Finetune not found"})
			return
		}
		delete(a.details, body.ID)
		for i, id := range a.ids {
			if id == body.ID {
				a.ids = append(a.ids[:i], a.ids[i+1:]...)
				break
			}
		}
		enc.Encode(map[string]any{"status": "ok", "deleted_finetune_id": body.ID})
	default:
		w.WriteHeader(http.StatusNotFound)
		enc.Encode(map[string]any{"detail": "Not Found"})
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// api returns a real core client whose requests this account answers in process.
func (a *account) api() *core.API {
	client := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
	return core.NewAPI(core.APIOptions{BaseURL: "http://proxy.test", HTTP: client, Timeout: 10 * time.Second})
}
