//go:build !js

// The fault tests run natively only: they put the real proxy (package proxy,
// which listens on TCP) between the client and a misbehaving upstream, and
// in a browser the client's transport is fetch, which no local server here
// can stand in for.

package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/proxy"
)

// faultBody is a BFL-like answer, long enough to be cut in the middle.
var faultBody = `{"id":"task-1","status":"Ready","result":{"sample":"https://delivery.example/a.png"},"progress":1,"note":"` +
	strings.Repeat("x", 4000) + `"}`

// faults answer every request the same broken way. Image requests get
// image/png, so a proxy in between passes them on as images.
var faults = map[string]http.HandlerFunc{
	"500":          answer(http.StatusInternalServerError, "application/json", `{"detail":"Internal Server Error"}`, ""),
	"502":          answer(http.StatusBadGateway, "text/html", "<html><body>502 Bad Gateway</body></html>", ""),
	"invalid-json": answer(http.StatusOK, "text/html", "<html><body>Welcome to nginx!</body></html>", ""),
	"429-retry-after": answer(http.StatusTooManyRequests, "application/json",
		`{"detail":"You have exceeded the number of active tasks"}`, "1"),
	"429": answer(http.StatusTooManyRequests, "application/json", `{"detail":"You have exceeded the number of active tasks"}`, ""),
	"timeout": func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(15 * time.Second):
		}
	},
	"reset": func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
			contentType(r), len(faultBody), faultBody[:len(faultBody)/2])
		_ = buf.Flush()
		// A plain close, not a TCP reset: a reset can make the client's
		// kernel drop the head it has not read yet, and the fault would
		// land before the answer instead of in the middle of its body.
		_ = conn.Close()
	},
	"drip": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType(r))
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		// Whitespace is valid JSON padding: a decoder keeps waiting for more.
		for _, err := io.WriteString(w, "{"); err == nil; _, err = io.WriteString(w, " ") {
			_ = rc.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	},
}

// answer is a complete answer; retryAfter "" sends no Retry-After.
func answer(status int, ctype, body, retryAfter string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func contentType(r *http.Request) string {
	if strings.Contains(r.URL.Path, "image") || strings.HasSuffix(r.URL.Path, ".png") {
		return "image/png"
	}
	return "application/json"
}

// call is one client method; post marks the submits, which must go out once.
type call struct {
	name string
	post bool
	run  func(ctx context.Context, a *API, upstream string) error
}

var calls = []call{
	{"get", false, func(ctx context.Context, a *API, _ string) error {
		var out map[string]any
		return a.Get(ctx, "credits", nil, &out)
	}},
	{"poll", false, func(ctx context.Context, a *API, up string) error {
		_, err := a.Poll(ctx, up+"/v1/get_result?id=task-1")
		return err
	}},
	{"image", false, func(ctx context.Context, a *API, up string) error {
		_, _, err := a.Image(ctx, up+"/delivery/a.png")
		return err
	}},
	{"post", true, func(ctx context.Context, a *API, _ string) error {
		var out map[string]any
		return a.Post(ctx, "flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": "ft-1", "prompt": "TOK"}, &out)
	}},
	{"post-json", true, func(ctx context.Context, a *API, _ string) error {
		var out map[string]any
		return a.PostJSON(ctx, "finetune", []byte(`{"file_data":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==","finetune_comment":"faults"}`), nil, &out)
	}},
}

// outcome is what the user must be told; retried means a GET-like call
// was attempted 1+Retries times.
type outcome struct {
	status     int
	message    string
	retried    bool
	retryAfter time.Duration
}

const (
	tryLater = "try again in a minute"
	tooMany  = "Too many tasks"
	// unsure is the warning for a submit whose fate is unknown: resending
	// it blindly may pay for the same work twice.
	unsure = "may have reached BFL"
)

// expect is the outcome of fault for c, called directly or through the proxy.
func expect(fault string, c call, viaProxy bool) (outcome, bool) {
	var o outcome
	switch fault {
	case "500", "502":
		o = outcome{status: map[string]int{"500": 500, "502": 502}[fault], message: tryLater, retried: true}
	case "timeout":
		o = outcome{message: "did not answer in time", retried: true}
		if viaProxy {
			o = outcome{status: http.StatusGatewayTimeout, message: tryLater, retried: true}
		}
	case "reset":
		o = outcome{message: "broke off", retried: true}
	case "drip":
		o = outcome{message: "did not answer in time", retried: true}
	case "invalid-json":
		if c.name == "image" {
			return o, false // an image is not JSON
		}
		o = outcome{status: http.StatusOK, message: "cannot read"}
	case "429-retry-after":
		o = outcome{status: http.StatusTooManyRequests, message: tooMany, retried: true, retryAfter: time.Second}
	case "429":
		o = outcome{status: http.StatusTooManyRequests, message: tooMany, retried: true}
	}
	// The proxy answers an image fetch that failed with a 5xx as a 502
	// naming the host.
	if viaProxy && c.name == "image" && o.status >= 500 && o.status != http.StatusGatewayTimeout {
		o.status = http.StatusBadGateway
	}
	if c.post {
		o.retried = false
		switch o.status {
		case 0, http.StatusOK, http.StatusBadGateway, http.StatusGatewayTimeout:
			o.message = unsure
		}
	}
	return o, true
}

func TestUpstreamFaults(t *testing.T) {
	before := settledGoroutines()
	t.Run("cases", func(t *testing.T) {
		// Scenarios run side by side (not t.Parallel, which -parallel
		// would hold to the core count): several wait out timeouts.
		var wg sync.WaitGroup
		for fault := range faults {
			for _, viaProxy := range []bool{false, true} {
				for _, c := range calls {
					want, ok := expect(fault, c, viaProxy)
					if !ok {
						continue
					}
					name := fault + "/direct/" + c.name
					if viaProxy {
						name = fault + "/proxy/" + c.name
					}
					wg.Go(func() {
						t.Run(name, func(t *testing.T) { checkFault(t, fault, c, viaProxy, want) })
					})
				}
			}
		}
		wg.Wait()
	})
	checkNoLeak(t, before)
}

func checkFault(t *testing.T, fault string, c call, viaProxy bool, want outcome) {
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		// Only once the body is read does the server notice a client that
		// hangs up, and cancel the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		faults[fault](w, r)
	}))
	t.Cleanup(up.Close)
	// Only the slow faults meet a short timeout; every other answer gets
	// ample time, so a loaded machine cannot turn it into a timeout. A
	// silent upstream meets the proxy's timeout well before the client's,
	// so the proxy's own answer is what the client sees.
	base, timeout, upstreamTimeout := up.URL, 10*time.Second, 10*time.Second
	switch {
	case fault == "timeout" && viaProxy:
		upstreamTimeout = 300 * time.Millisecond
	case fault == "timeout" || fault == "drip":
		timeout = 500 * time.Millisecond
	}
	if viaProxy {
		base = startLiveProxy(t, up.URL, upstreamTimeout)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rec := &recorder{}
	const retries = 2
	a := NewAPI(APIOptions{BaseURL: base, Timeout: timeout, UploadTimeout: timeout, Retries: retries,
		Backoff: 100 * time.Millisecond, HTTP: &http.Client{Transport: tr}, Sleep: rec.sleep})

	err := c.run(testCtx(t), a, up.URL)

	ae := asAPIError(t, err)
	if ae.Status != want.status {
		t.Errorf("status %d, want %d (%v)", ae.Status, want.status, err)
	}
	if !strings.Contains(ae.Message, want.message) {
		t.Errorf("message %q, want one saying %q", ae.Message, want.message)
	}
	if !strings.HasSuffix(ae.Message, ".") || strings.Contains(ae.Message, "127.0.0.1") {
		t.Errorf("message %q is not one sentence for a user", ae.Message)
	}
	if want.retryAfter > 0 && ae.RetryAfter != want.retryAfter {
		t.Errorf("RetryAfter %v, want %v", ae.RetryAfter, want.retryAfter)
	}
	attempts := 1
	if want.retried {
		attempts = 1 + retries
	}
	if n := int(hits.Load()); n != attempts {
		t.Errorf("upstream saw %d requests, want %d", n, attempts)
	}
	rec.mu.Lock()
	delays := rec.delays
	rec.mu.Unlock()
	if len(delays) != attempts-1 {
		t.Fatalf("slept %v between attempts, want %d sleeps", delays, attempts-1)
	}
	for i, d := range delays {
		lo, hi := a.opts.Backoff<<i/2, a.opts.Backoff<<i
		if want.retryAfter > 0 {
			lo, hi = want.retryAfter, want.retryAfter
		}
		if d < lo || d > hi {
			t.Errorf("sleep %d was %v, want within [%v, %v]", i, d, lo, hi)
		}
	}
}

func asAPIError(t *testing.T, err error) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *APIError", err, err)
	}
	return ae
}

// startLiveProxy runs the real proxy in live mode against upstream and
// returns its base URL; it stops, and is waited for, when the test ends.
func startLiveProxy(t *testing.T, upstream string, upstreamTimeout time.Duration) string {
	t.Helper()
	base, _ := startLiveProxyLogged(t, upstream, upstreamTimeout)
	return base
}

// startLiveProxyLogged is startLiveProxy that also gives the proxy's log.
func startLiveProxyLogged(t *testing.T, upstream string, upstreamTimeout time.Duration) (string, *lockedBuffer) {
	t.Helper()
	vars := map[string]string{
		"BFL_API_KEY": "faults-test-key", "BFL_API_URL": upstream, "ADDR": "127.0.0.1:0",
		"SITE_DIR": t.TempDir(), "UPSTREAM_TIMEOUT": upstreamTimeout.String(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, logs := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- proxy.Run(ctx, func(k string) string { return vars[k] }, out, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("proxy did not stop within 10s")
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, after, ok := strings.Cut(out.String(), "listening on "); ok {
			base, _, _ := strings.Cut(after, "\n")
			return base, logs
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("proxy stopped at start: %v\n%s", err, out)
		default:
		}
	}
	t.Fatalf("proxy printed no address within 10s:\n%s", out)
	return "", nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// settledGoroutines counts goroutines once the count stops falling, so
// connections closing after an earlier test do not hide a leak.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// checkNoLeak waits up to 5 s for the goroutine count to return to before,
// then fails listing every goroutine still running.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	var n int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = runtime.NumGoroutine(); n <= before {
			return
		}
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("%d goroutines after the faults, %d before:\n%s", n, before, buf)
}

func TestRefusedSubmitSaysNothingWasSent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	a := NewAPI(APIOptions{BaseURL: base, Timeout: 2 * time.Second})
	err := a.Post(testCtx(t), "flux-pro-1.1-ultra-finetuned", map[string]any{"prompt": "TOK"}, nil)
	ae := asAPIError(t, err)
	// No connection means no submit: saying it may have reached BFL would
	// only worry the user.
	if ae.Status != 0 || !strings.Contains(ae.Message, "could not be reached") {
		t.Fatalf("err = %v, want 'could not be reached'", err)
	}
}

func TestSubmitThatTheProxyCouldNotSendSaysNothingWasSent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	upstream := srv.URL
	srv.Close() // the proxy runs, BFL cannot be reached
	a := NewAPI(APIOptions{BaseURL: startLiveProxy(t, upstream, 10*time.Second), Timeout: 10 * time.Second, UploadTimeout: 10 * time.Second})
	err := a.Post(testCtx(t), "flux-pro-1.1-ultra-finetuned", map[string]any{"prompt": "TOK"}, nil)
	ae := asAPIError(t, err)
	// The proxy answers 502 but knows the submit never left it; warning of
	// a possible double charge would send the user hunting for a task.
	if ae.Status != http.StatusBadGateway || !ae.NotSent || strings.Contains(ae.Message, unsure) || !strings.Contains(ae.Message, "nothing was sent") {
		t.Fatalf("err = %v (not sent %v), want a 502 that says nothing was sent", err, ae.NotSent)
	}
}

// TestServerSideFailuresNameTheProxyLogLine checks that a failure on the
// server side tells the user the proxy's id for the request, and that the
// proxy's warning about it carries that id; a refusal the user can fix
// alone does not need one.
func TestServerSideFailuresNameTheProxyLogLine(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	var resets atomic.Bool
	bfl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if resets.Load() {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"detail":[{"loc":["body","prompt"],"msg":"Field required","type":"missing"}]}`)
	}))
	t.Cleanup(bfl.Close)

	for _, tc := range []struct {
		name, upstream, warning string
		resets                  bool
	}{
		{"BFL unreachable", closed.URL, "upstream unreachable", false},
		{"connection reset before an answer", bfl.URL, "upstream failed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resets.Store(tc.resets)
			base, logs := startLiveProxyLogged(t, tc.upstream, 10*time.Second)
			a := NewAPI(APIOptions{BaseURL: base, Timeout: 10 * time.Second})
			ae := asAPIError(t, a.Post(testCtx(t), "flux-pro-1.1-ultra-finetuned", map[string]any{"prompt": "TOK"}, nil))
			if ae.RequestID == "" || !strings.Contains(ae.Message, "Proxy log reference: "+ae.RequestID) {
				t.Fatalf("HTTP %d %q (request id %q): want the message to name the request id", ae.Status, ae.Message, ae.RequestID)
			}
			if !strings.Contains(logs.String(), `"msg":"`+tc.warning+`","id":"`+ae.RequestID+`"`) {
				t.Errorf("no %q warning with id %s in the proxy's log:\n%s", tc.warning, ae.RequestID, logs)
			}
		})
	}

	t.Run("a 422 names its field, no reference", func(t *testing.T) {
		resets.Store(false)
		a := NewAPI(APIOptions{BaseURL: startLiveProxy(t, bfl.URL, 10*time.Second), Timeout: 10 * time.Second})
		ae := asAPIError(t, a.Post(testCtx(t), "flux-pro-1.1-ultra-finetuned", map[string]any{"prompt": "TOK"}, nil))
		if ae.Status != http.StatusUnprocessableEntity || ae.RequestID == "" || strings.Contains(ae.Message, "reference") {
			t.Errorf("HTTP %d %q (request id %q): want a 422 whose message has no reference", ae.Status, ae.Message, ae.RequestID)
		}
	})
}
