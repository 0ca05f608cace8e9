package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// faultTimeout is the UPSTREAM_TIMEOUT of the fault tests: short, so the
// timeouts trip fast, and still far above a loopback answer on a busy
// machine.
const faultTimeout = time.Second

// okJSON is the upstream's answer to a healthy API request.
const okJSON = `{"id":"t","status":"Ready","result":{"sample":"x"}}`

// faultyUpstream answers every request with the fault named by its "fault"
// query parameter, or healthily without one. API paths answer JSON,
// /delivery/ paths a PNG. It closes idle connections after 50 ms, so a
// settled proxy holds no connection to it. posts counts the POSTs that
// reached it.
func faultyUpstream(t *testing.T, posts *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		ok, ct := []byte(okJSON), "application/json"
		if strings.HasPrefix(r.URL.Path, "/delivery/") {
			ok, ct = tinyPNG, "image/png"
		}
		h := w.Header()
		switch r.URL.Query().Get("fault") {
		case "500-json":
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"detail":"Internal Server Error: try again"}`)
		case "500-bare":
			w.WriteHeader(http.StatusInternalServerError)
		case "500-stall":
			// The head in time, then a message that never ends.
			h.Set("Content-Type", "application/json")
			h.Set("Content-Length", "100")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"detail":`)
			w.(http.Flusher).Flush()
			waitGone(r)
		case "502-html":
			h.Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><body>Bad gateway</body></html>")
		case "json-invalid-200":
			h.Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"t","status":"Rea`)
		case "json-invalid-500":
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "<html>upstream exploded</html>")
		case "429-retry":
			h.Set("Content-Type", "application/json")
			h.Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"detail":"Too many active tasks; retry later"}`)
		case "429-bare":
			w.WriteHeader(http.StatusTooManyRequests)
		case "slow-head":
			waitGone(r)
		case "drip-head":
			c := hijack(t, w)
			defer c.Close()
			head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, len(ok))
			drip(c, []byte(head+string(ok)), 1, 50*time.Millisecond)
		case "drip-body":
			// The whole answer takes longer than UPSTREAM_TIMEOUT; its head
			// came in time.
			h.Set("Content-Type", ct)
			h.Set("Content-Length", fmt.Sprint(len(ok)))
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			step := (len(ok) + 7) / 8
			drip(flushWriter{w}, ok, step, faultTimeout*3/2/8)
		case "drip-stall":
			h.Set("Content-Type", ct)
			h.Set("Content-Length", fmt.Sprint(len(ok)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(ok[:4])
			w.(http.Flusher).Flush()
			waitGone(r)
		case "reset-length":
			c := hijack(t, w)
			_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", ct, len(ok), ok[:len(ok)/2])
			reset(c)
		case "reset-chunked":
			c := hijack(t, w)
			_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", ct, len(ok)/2, ok[:len(ok)/2])
			reset(c)
		case "reset-before-head":
			reset(hijack(t, w))
		default:
			h.Set("Content-Type", ct)
			_, _ = w.Write(ok)
		}
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// waitGone holds a request until its connection is closed (or 10 s pass,
// so a proxy that never lets go cannot hang the test).
func waitGone(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func hijack(t *testing.T, w http.ResponseWriter) net.Conn {
	c, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		panic(http.ErrAbortHandler)
	}
	return c
}

// reset closes the connection with a TCP RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.w.(http.Flusher).Flush()
	return n, err
}

// drip writes b step bytes at a time, every, until done or a write fails.
func drip(w io.Writer, b []byte, step int, every time.Duration) {
	for len(b) > 0 {
		n := min(step, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
		time.Sleep(every)
	}
}

// outcome is what a client got: an answer read to the end, or an error
// (from sending or from reading the body).
type outcome struct {
	status int
	header http.Header
	body   string
	err    error
}

// want checks one outcome.
type want func(t *testing.T, o outcome)

// detail wants status with a JSON {"detail": ...} naming each of parts.
func detail(status int, parts ...string) want {
	return func(t *testing.T, o outcome) {
		t.Helper()
		if o.err != nil {
			t.Fatalf("want %d with a detail, got error %v", status, o.err)
		}
		var d struct{ Detail string }
		if o.status != status || o.header.Get("Content-Type") != "application/json" ||
			json.Unmarshal([]byte(o.body), &d) != nil || d.Detail == "" {
			t.Fatalf("want %d with a JSON detail, got %d %q %q", status, o.status, o.header.Get("Content-Type"), o.body)
		}
		for _, p := range parts {
			if !strings.Contains(d.Detail, p) {
				t.Errorf("detail %q does not say %q", d.Detail, p)
			}
		}
	}
}

// exact wants the upstream's answer unchanged.
func exact(status int, body string) want {
	return func(t *testing.T, o outcome) {
		t.Helper()
		if o.err != nil || o.status != status || o.body != body {
			t.Fatalf("want %d %q passed through, got %d %q (error %v)", status, body, o.status, o.body, o.err)
		}
	}
}

// broken wants the client to learn the answer is incomplete: an error,
// never a clean answer holding part of the upstream's.
func broken(t *testing.T, o outcome) {
	t.Helper()
	if o.err == nil {
		t.Fatalf("a broken answer reached the client as a clean %d %q", o.status, o.body)
	}
}

// and checks all of ws.
func and(ws ...want) want {
	return func(t *testing.T, o outcome) {
		t.Helper()
		for _, w := range ws {
			w(t, o)
		}
	}
}

func retryAfter(v string) want {
	return func(t *testing.T, o outcome) {
		t.Helper()
		if got := o.header.Get("Retry-After"); got != v {
			t.Errorf("Retry-After %q, want %q", got, v)
		}
	}
}

// faultPath is one way the proxy reaches the upstream.
type faultPath struct {
	name string
	req  func(base, up, fault string) (*http.Request, error)
}

var faultPaths = []faultPath{
	{"POST", func(base, _, fault string) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/flux-pro-1.1-ultra-finetuned?fault="+fault, strings.NewReader(`{"prompt":"a cat"}`))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}},
	{"GET", func(base, _, fault string) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, base+"/api/v1/get_result?id=t&fault="+fault, nil)
	}},
	{"poll", func(base, up, fault string) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, base+"/api/poll?url="+url.QueryEscape(up+"/v1/get_result?id=t&fault="+fault), nil)
	}},
	{"image", func(base, up, fault string) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, base+"/api/image?url="+url.QueryEscape(up+"/delivery/a.png?fault="+fault), nil)
	}},
}

// TestUpstreamFaults sends each upstream fault through each of the proxy's
// ways to the upstream, checks what the client gets, that a POST reaches
// the upstream exactly once, and that no goroutine outlives the request.
func TestUpstreamFaults(t *testing.T) {
	var posts atomic.Int64
	up := faultyUpstream(t, &posts)
	p := startLive(t, &fakeBFL{Server: up}, map[string]string{"UPSTREAM_TIMEOUT": faultTimeout.String()})

	timedOut := detail(http.StatusGatewayTimeout, "UPSTREAM_TIMEOUT")
	// api is the want of the three paths that forward API answers; image
	// that of /api/image, which only ever passes a raster image.
	faults := []struct {
		fault      string
		api, image want
		post       want // when a POST differs from the other API paths
	}{
		{fault: "none", api: exact(200, okJSON), image: exact(200, string(tinyPNG))},
		{fault: "500-json", api: exact(500, `{"detail":"Internal Server Error: try again"}`), image: detail(502, "500")},
		{fault: "500-bare", api: detail(500, "500"), image: detail(502, "500")},
		// An error's message is read to check it is JSON: that read ends
		// at UPSTREAM_TIMEOUT too.
		{fault: "500-stall", api: detail(500, "500", "broke off"), image: detail(502, "500")},
		{fault: "502-html", api: detail(502, "502"), image: detail(502, "502")},
		{fault: "json-invalid-200", api: exact(200, `{"id":"t","status":"Rea`), image: detail(502, "not a raster image")},
		{fault: "json-invalid-500", api: detail(500, "500", "not JSON"), image: detail(502, "500")},
		{fault: "429-retry",
			api:   and(exact(429, `{"detail":"Too many active tasks; retry later"}`), retryAfter("7")),
			image: and(detail(429, "429"), retryAfter("7"))},
		{fault: "429-bare", api: and(detail(429, "429"), retryAfter("")), image: and(detail(429, "429"), retryAfter(""))},
		{fault: "slow-head", api: timedOut, image: timedOut,
			post: detail(http.StatusGatewayTimeout, "UPSTREAM_TIMEOUT", "may have reached BFL")},
		{fault: "drip-head", api: timedOut, image: timedOut,
			post: detail(http.StatusGatewayTimeout, "UPSTREAM_TIMEOUT", "may have reached BFL")},
		{fault: "drip-body", api: exact(200, okJSON), image: exact(200, string(tinyPNG))},
		{fault: "drip-stall", api: broken, image: broken},
		{fault: "reset-length", api: broken, image: broken},
		{fault: "reset-chunked", api: broken, image: broken},
		{fault: "reset-before-head", api: detail(502, "connection"), image: detail(502, "connection"),
			post: detail(502, "may have reached BFL")},
	}
	for _, f := range faults {
		for _, path := range faultPaths {
			t.Run(f.fault+"/"+path.name, func(t *testing.T) {
				w := f.api
				switch {
				case path.name == "image":
					w = f.image
				case path.name == "POST" && f.post != nil:
					w = f.post
				}
				c := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
				if f.fault == "drip-stall" {
					c.Timeout = time.Second
				}
				base := runtime.NumGoroutine()
				postsBefore := posts.Load()
				req, err := path.req(p.base, up.URL, f.fault)
				if err != nil {
					t.Fatal(err)
				}
				begin := time.Now()
				o := send(c, req)
				w(t, o)
				// Every fault here ends by UPSTREAM_TIMEOUT at the latest
				// (the upstream's own guard in waitGone is 10 s).
				if took := time.Since(begin); took > 5*faultTimeout {
					t.Errorf("answered after %s with UPSTREAM_TIMEOUT=%s", took, faultTimeout)
				}
				if o.header != nil {
					noKey(t, f.fault, &http.Response{Header: o.header}, o.body)
				}
				if n := posts.Load() - postsBefore; path.name == "POST" && n != 1 {
					t.Errorf("the POST reached the upstream %d times, want once", n)
				}
				c.CloseIdleConnections()
				settleGoroutines(t, base)
			})
		}
	}
	if strings.Contains(p.logsAfterStop(t), testKey) {
		t.Error("the key is in the proxy's log")
	}
}

// TestWarningsNameTheRequest checks that the warnings logged for a failed
// request carry the id its answer gave the client, which the PWA shows with
// the error: the operator finds what went wrong from what the user saw.
func TestWarningsNameTheRequest(t *testing.T) {
	var posts atomic.Int64
	up := faultyUpstream(t, &posts)
	faulty := startLive(t, &fakeBFL{Server: up}, map[string]string{"UPSTREAM_TIMEOUT": faultTimeout.String()})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	unreachable := startLive(t, &fakeBFL{Server: closed}, nil)

	ids := map[string]string{} // request id -> what the request was
	for _, tc := range []struct {
		p     *running
		up    string
		fault string
		paths []string
	}{
		// "upstream failed" and "fetch failed" after a connection
		{faulty, up.URL, "reset-before-head", []string{"POST", "GET", "poll", "image"}},
		// "upstream answer broke off": a chunked answer's head is flushed
		// before its body breaks, so the client has the id
		{faulty, up.URL, "reset-chunked", []string{"GET"}},
		// "upstream unreachable" and "fetch failed" before any connection
		{unreachable, closed.URL, "none", []string{"POST", "GET", "poll"}},
	} {
		for _, path := range faultPaths {
			if !slices.Contains(tc.paths, path.name) {
				continue
			}
			what := tc.fault + " " + path.name
			req, err := path.req(tc.p.base, tc.up, tc.fault)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			id := resp.Header.Get("X-Request-Id")
			if id == "" {
				t.Fatalf("%s: %d without an X-Request-Id", what, resp.StatusCode)
			}
			ids[id] = what
		}
	}

	warned := map[string]bool{}
	for line := range strings.Lines(faulty.logsAfterStop(t) + unreachable.logsAfterStop(t)) {
		var rec struct{ Level, Msg, ID string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		// ReverseProxy's own messages know no request; the request line
		// of a cut answer carries its id whatever else is logged.
		if rec.Level != "WARN" || strings.HasPrefix(rec.Msg, "httputil: ") {
			continue
		}
		if rec.ID == "" {
			t.Errorf("a warning without a request id: %s", line)
		}
		if rec.Msg != "request" {
			warned[rec.ID] = true
		}
	}
	for id, what := range ids {
		if !warned[id] {
			t.Errorf("%s: no warning carries its request id %s", what, id)
		}
	}
}

// A failed fetch of a signed link logs its host and what went wrong, never
// the link itself: its query is a credential to the image.
func TestFailedFetchesKeepSignedLinksOutOfTheLog(t *testing.T) {
	var posts atomic.Int64
	up := faultyUpstream(t, &posts)
	p := startLive(t, &fakeBFL{Server: up}, nil)
	const sig = "sig=s3cret-signature"
	for _, link := range []string{
		"/api/image?url=" + url.QueryEscape(up.URL+"/delivery/a.png?fault=reset-before-head&"+sig),
		"/api/poll?url=" + url.QueryEscape(up.URL+"/v1/get_result?fault=reset-before-head&"+sig),
	} {
		resp, body := do(t, "GET", p.base+link, nil, nil)
		if resp.StatusCode != http.StatusBadGateway || strings.Contains(body, sig) {
			t.Errorf("%s: %d %s; want a 502 without the signature", link, resp.StatusCode, body)
		}
	}
	logs := p.logsAfterStop(t)
	if !strings.Contains(logs, `"msg":"fetch failed"`) {
		t.Fatalf("no fetch failure logged:\n%s", logs)
	}
	if strings.Contains(logs, sig) {
		t.Errorf("a signed link is in the log:\n%s", logs)
	}
}

// A client that hangs up while an answer streams is not an upstream fault:
// the request line records it, and no warning blames BFL.
func TestClientLeavingMidAnswerIsNotBlamedOnBFL(t *testing.T) {
	release := make(chan struct{})
	up := rawUpstream(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096)) // the request
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
		<-release // the rest never comes while the test runs
	})
	t.Cleanup(func() { close(release) })
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up})
	c := dialProxy(t, p)
	_, _ = io.WriteString(c, "GET /api/v1/credits HTTP/1.1\r\nHost: localhost\r\n\r\n")
	got, err := bufio.NewReader(c).ReadString('}')
	if err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("before hanging up, the client read %q (%v)", got, err)
	}
	_ = c.Close()
	var logs string
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs, `"path":"/api/v1/credits"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no request line 5 s after the client left:\n%s", logs)
		}
		logs = p.logs.String()
	}
	if strings.Contains(logs, "upstream answer broke off") {
		t.Errorf("the client's hang-up was logged as BFL's fault:\n%s", logs)
	}
}

func send(c *http.Client, req *http.Request) outcome {
	resp, err := c.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return outcome{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

// settleGoroutines waits for the goroutine count to fall back to base and
// fails with every goroutine's stack if it does not within 5 s.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines 5 s after the request, %d before it:\n%s", runtime.NumGoroutine(), base, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
