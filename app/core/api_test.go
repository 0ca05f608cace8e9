package core

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder stands in for time.Sleep so backoff is observed, not waited for.
type recorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return ctx.Err()
}

func newTestAPI(t *testing.T, h http.HandlerFunc) (*API, *recorder) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rec := &recorder{}
	return NewAPI(APIOptions{BaseURL: srv.URL, Timeout: 5 * time.Second, Sleep: rec.sleep}), rec
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGetRetriesWithGrowingJitteredBackoff(t *testing.T) {
	var calls atomic.Int32
	a, rec := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"credits": 12.5}`)
	})
	var out struct{ Credits float64 }
	if err := a.Get(testCtx(t), "credits", nil, &out); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if out.Credits != 12.5 || calls.Load() != 4 {
		t.Fatalf("credits %v after %d calls, want 12.5 after 4", out.Credits, calls.Load())
	}
	if len(rec.delays) != 3 {
		t.Fatalf("slept %d times, want 3: %v", len(rec.delays), rec.delays)
	}
	for i, d := range rec.delays {
		full := DefaultBackoff << i
		if d < full/2 || d > full {
			t.Errorf("delay %d = %v, want within [%v, %v]", i, d, full/2, full)
		}
	}
}

func TestGetHonoursRetryAfterOn429(t *testing.T) {
	var calls atomic.Int32
	a, rec := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, `{"finetunes": ["a"]}`)
	})
	var out struct{ Finetunes []string }
	if err := a.Get(testCtx(t), "my_finetunes", nil, &out); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(rec.delays) != 1 || rec.delays[0] != 7*time.Second {
		t.Fatalf("delays %v, want exactly [7s] from Retry-After", rec.delays)
	}
}

func TestGetGivesUpAfterRetries(t *testing.T) {
	var calls atomic.Int32
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, `{"detail": "upstream unreachable"}`)
	})
	err := a.Get(testCtx(t), "credits", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway {
		t.Fatalf("err = %v, want *APIError 502", err)
	}
	if got := calls.Load(); got != DefaultRetries+1 {
		t.Fatalf("%d attempts, want %d", got, DefaultRetries+1)
	}
	if !strings.Contains(ae.Message, "try again") {
		t.Errorf("message %q does not tell the user what to do", ae.Message)
	}
}

func TestGetDoesNotRetryClientErrors(t *testing.T) {
	var calls atomic.Int32
	a, rec := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"detail": "Not authenticated - Invalid Authentication"}`)
	})
	err := a.Get(testCtx(t), "credits", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || calls.Load() != 1 || len(rec.delays) != 0 {
		t.Fatalf("err %v after %d calls, %d sleeps: want one 403", err, calls.Load(), len(rec.delays))
	}
	if ae.Detail == nil || ae.Detail.Detail != "Not authenticated - Invalid Authentication" {
		t.Errorf("detail %+v not decoded", ae.Detail)
	}
}

// A submit's timeout leaves time to send its body on a slow uplink: a
// fill's image and mask make megabytes, and a submit cut off late may
// already have been charged.
func TestPostTimeoutGrowsWithTheBody(t *testing.T) {
	a := NewAPI(APIOptions{Timeout: 30 * time.Second, UploadTimeout: 15 * time.Minute})
	for size, want := range map[int]time.Duration{
		1 << 10:   30*time.Second + time.Second/64,
		8 << 20:   30*time.Second + 128*time.Second,
		512 << 20: 15 * time.Minute,
	} {
		if got := a.postTimeout(size); got != want {
			t.Errorf("%d bytes: timeout %v, want %v", size, got, want)
		}
	}
	// End to end: a 1 MB body answered after 300 ms, with Timeout 100 ms.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, `{"id":"t","polling_url":"u"}`)
	}))
	defer srv.Close()
	a = NewAPI(APIOptions{BaseURL: srv.URL, Timeout: 100 * time.Millisecond})
	err := a.Post(testCtx(t), "flux-pro-1.0-fill-finetuned", map[string]any{"image": strings.Repeat("A", 1<<20)}, nil)
	if err != nil {
		t.Errorf("a 1 MB submit with a 100 ms base timeout: %v", err)
	}
}

func TestPostIsNeverRetried(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		var calls atomic.Int32
		a, rec := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
		})
		err := a.Post(testCtx(t), "flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": "x"}, nil)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != status {
			t.Fatalf("status %d: err = %v", status, err)
		}
		if calls.Load() != 1 || len(rec.delays) != 0 {
			t.Fatalf("status %d: %d calls, %d sleeps; a submit must be sent once", status, calls.Load(), len(rec.delays))
		}
		if status == http.StatusTooManyRequests && ae.RetryAfter != time.Second {
			t.Errorf("RetryAfter = %v, want 1s reported to the caller", ae.RetryAfter)
		}
	}
}

func TestPostJSONIsNeverRetried(t *testing.T) {
	var calls atomic.Int32
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	err := a.PostJSON(testCtx(t), "finetune", []byte(`{}`), nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 500 || calls.Load() != 1 {
		t.Fatalf("err %v after %d calls, want one 500", err, calls.Load())
	}
}

func Test422NamesTheField(t *testing.T) {
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"detail":[{"loc":["body","iterations"],"msg":"Input should be greater than or equal to 100","type":"greater_than_equal"}]}`)
	})
	err := a.PostJSON(testCtx(t), "finetune", []byte(`{"iterations": 5}`), nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if ae.Field != "iterations" {
		t.Fatalf("Field = %q, want iterations", ae.Field)
	}
	if !strings.Contains(ae.Message, "iterations: Input should be greater than or equal to 100") {
		t.Errorf("message %q does not carry BFL's rule", ae.Message)
	}
}

func TestStatusMessagesSayWhatToDo(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   string
	}{
		{http.StatusUnauthorized, `{"detail":"this proxy needs its access token: send Authorization: Bearer <PROXY_TOKEN>"}`, "access token"},
		{http.StatusUnauthorized, `{"detail":"Not authenticated - Invalid Authentication"}`, "API key"},
		{http.StatusPaymentRequired, "", "Out of credits"},
		{http.StatusForbidden, "", "API key"},
		{http.StatusForbidden, `{"detail":"Invalid key"}`, "BFL refused the API key"},
		// The proxy's own refusals name what to change; "BFL refused the
		// API key" would send the user to the wrong place.
		{http.StatusForbidden, `{"detail":"this proxy answers other machines only with an access token: start it with PROXY_TOKEN set and enter the token in Settings"}`, "The proxy refused this request: this proxy answers other machines only with an access token"},
		{http.StatusForbidden, `{"detail":"a page from \"https://x.example\" may not call this proxy; list that origin in CORS_ORIGINS if it is yours"}`, "list that origin in CORS_ORIGINS"},
		{http.StatusForbidden, `{"detail":"url refused by POLL_HOSTS: host is not on the allowlist"}`, "url refused by POLL_HOSTS"},
		{http.StatusRequestEntityTooLarge, "", "too large"},
		{http.StatusRequestTimeout, `{"detail":"the request body did not arrive within this proxy's READ_TIMEOUT=10m0s; nothing was submitted to BFL"}`, "too slow"},
		{http.StatusTooManyRequests, "", "Too many tasks"},
	}
	for _, c := range cases {
		status, want := c.status, c.want
		a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, c.body)
		})
		err := a.Post(testCtx(t), "delete_finetune", map[string]string{"finetune_id": "x"}, nil)
		var ae *APIError
		if !errors.As(err, &ae) || !strings.Contains(ae.Message, want) {
			t.Errorf("HTTP %d: err = %v, want a message containing %q", status, err, want)
		}
	}
}

func TestEveryAttemptHasATimeout(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{}
	a := NewAPI(APIOptions{BaseURL: srv.URL, Timeout: 100 * time.Millisecond, Retries: 1, Sleep: rec.sleep})
	start := time.Now()
	err := a.Get(testCtx(t), "credits", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout *APIError", err)
	}
	if !strings.Contains(ae.Message, "did not answer in time") {
		t.Errorf("message %q", ae.Message)
	}
	if calls.Load() != 2 {
		t.Errorf("%d attempts, want 2 (a timed-out GET is retried)", calls.Load())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v: the per-attempt timeout did not apply", el)
	}
}

func TestUnreachableProxy(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	rec := &recorder{}
	a := NewAPI(APIOptions{BaseURL: base, Timeout: 2 * time.Second, Retries: 2, Sleep: rec.sleep})
	_, err := a.Health(testCtx(t))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 0 || !strings.Contains(ae.Message, "could not be reached") {
		t.Fatalf("err = %v, want 'could not be reached'", err)
	}
	if len(rec.delays) != 2 {
		t.Errorf("%d retries of a failed connection, want 2", len(rec.delays))
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(testCtx(t))
	a := NewAPI(APIOptions{BaseURL: srv.URL, Sleep: func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}})
	if err := a.Get(ctx, "credits", nil, nil); err == nil {
		t.Fatal("want an error")
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls after cancel, want 1", calls.Load())
	}
}

func TestRequestShape(t *testing.T) {
	type seen struct {
		method, path, query, auth, ctype, body string
	}
	got := make(chan seen, 8)
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
		switch r.URL.Path {
		case "/api/image":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write([]byte("\x89PNG data"))
		case "/healthz":
			_, _ = io.WriteString(w, `{"mode":"simulated","upstream":"api.sim.bfl.test","version":"v1"}`)
		default:
			_, _ = io.WriteString(w, `{"id":"t1","status":"Pending","progress":0.5}`)
		}
	})
	a.SetTarget(a.baseURL+"/", "s3cret")
	ctx := testCtx(t)

	var res map[string]any
	if err := a.Get(ctx, "finetune_details", url.Values{"finetune_id": {"ft 1"}}, &res); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.method != "GET" || s.path != "/api/v1/finetune_details" || s.query != "finetune_id=ft+1" || s.auth != "Bearer s3cret" {
		t.Errorf("GET sent %+v", s)
	}

	if err := a.Post(ctx, "delete_finetune", map[string]string{"finetune_id": "ft1"}, &res); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.method != "POST" || s.path != "/api/v1/delete_finetune" || s.ctype != "application/json" || s.body != `{"finetune_id":"ft1"}` {
		t.Errorf("POST sent %+v", s)
	}

	r, err := a.Poll(ctx, "https://api.us1.bfl.ai/v1/get_result?id=t1")
	if err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.path != "/api/poll" || s.query != "url="+url.QueryEscape("https://api.us1.bfl.ai/v1/get_result?id=t1") {
		t.Errorf("Poll sent %+v", s)
	}
	if r.ID != "t1" || r.Status != "Pending" || r.Progress == nil || *r.Progress != 0.5 {
		t.Errorf("Poll decoded %+v", r)
	}

	data, ctype, err := a.Image(ctx, "https://delivery.us1.bfl.ai/x.png")
	if err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.path != "/api/image" || !strings.HasPrefix(s.query, "url=") {
		t.Errorf("Image sent %+v", s)
	}
	if string(data) != "\x89PNG data" || ctype != "image/png" {
		t.Errorf("Image = %q, %q", data, ctype)
	}

	h, err := a.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-got
	if !h.Simulated() || h.Upstream != "api.sim.bfl.test" {
		t.Errorf("Health = %+v", h)
	}
}

func TestUnknownEndpointOrMethodNeverLeaves(t *testing.T) {
	var calls atomic.Int32
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	ctx := testCtx(t)
	var ae *APIError
	if err := a.Get(ctx, "no_such_thing", nil, nil); !errors.As(err, &ae) {
		t.Errorf("unknown endpoint: %v", err)
	}
	if err := a.Get(ctx, "finetune", nil, nil); !errors.As(err, &ae) || !strings.Contains(ae.Message, "takes POST") {
		t.Errorf("GET of a POST endpoint: %v", err)
	}
	if err := a.Post(ctx, "credits", nil, nil); !errors.As(err, &ae) {
		t.Errorf("POST of a GET endpoint: %v", err)
	}
	if calls.Load() != 0 {
		t.Fatalf("%d requests reached the proxy", calls.Load())
	}
}

func TestPostJSONReportsProgress(t *testing.T) {
	body := []byte(`{"file_data":"` + strings.Repeat("A", 3<<20) + `"}`)
	var received atomic.Int64
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received.Store(n)
		_, _ = io.WriteString(w, `{"id":"ft-1","finetune_id":"ft-1"}`)
	})
	var mu sync.Mutex
	var events []int64
	var total int64
	var out struct {
		FinetuneID string `json:"finetune_id"`
	}
	err := a.PostJSON(testCtx(t), "finetune", body, func(sent, tot int64) {
		mu.Lock()
		events = append(events, sent)
		total = tot
		mu.Unlock()
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.FinetuneID != "ft-1" || received.Load() != int64(len(body)) {
		t.Fatalf("decoded %+v, server got %d of %d bytes", out, received.Load(), len(body))
	}
	if len(events) < 2 || total != int64(len(body)) || events[len(events)-1] != total {
		t.Fatalf("progress %d events ending at %v of %d", len(events), events[len(events)-1:], total)
	}
	for i := 1; i < len(events); i++ {
		if events[i] < events[i-1] {
			t.Fatalf("progress went backwards: %v", events)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 12 ", 12 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"100000", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, c := range cases {
		if got := parseRetryAfter(c.in, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestProxyConfigDecodes(t *testing.T) {
	a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/config" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"mode": "live", "upstream": "api.eu1.bfl.ai", "flags": map[string]any{"batches": true}})
	})
	pc, err := a.ProxyConfig(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if pc.Upstream != "api.eu1.bfl.ai" || pc.Flags["batches"] != true {
		t.Fatalf("ProxyConfig = %+v", pc)
	}
}

// The 2026 API snapshot no longer lists POST /v1/finetune: if BFL retires
// it, a training submit meets FastAPI's bare 404 (or 405), and "Not found:
// Not Found" would leave the user with nothing to do.
func TestTrainingThatBFLDoesNotOfferSaysWhereToTrain(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		a, _ := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"detail":"Not Found"}`)
		})
		err := a.PostJSON(testCtx(t), "finetune", []byte(`{"file_data":"x"}`), nil, nil)
		var ae *APIError
		if !errors.As(err, &ae) || !strings.Contains(ae.Message, "BFL_API_URL") || !strings.Contains(ae.Message, "dashboard") {
			t.Errorf("HTTP %d on a training submit: %v; want where to train instead", status, err)
		}
		// Elsewhere a 404 keeps its plain meaning.
		err = a.Post(testCtx(t), "delete_finetune", map[string]string{"finetune_id": "x"}, nil)
		if errors.As(err, &ae) && strings.Contains(ae.Message, "dashboard") {
			t.Errorf("HTTP %d on delete: %q talks about training", status, ae.Message)
		}
	}
}
