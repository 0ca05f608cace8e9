package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upConns counts the connections an upstream accepted and closed.
type upConns struct{ opened, closed atomic.Int64 }

// countingUpstream is an upstream server that counts its connections, with
// its handler and tuning supplied by the test.
func countingUpstream(t *testing.T, h http.HandlerFunc, tune func(*http.Server)) (*httptest.Server, *upConns) {
	t.Helper()
	conns := &upConns{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.opened.Add(1)
		case http.StateClosed:
			conns.closed.Add(1)
		}
	}
	if tune != nil {
		tune(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

func getOK(t *testing.T, url string) string {
	t.Helper()
	resp, body := do(t, "GET", url, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body
}

func TestFastPathReusesConnections(t *testing.T) {
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") != "" {
			_, _ = io.WriteString(w, `{"part":1,`)
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, `{"credits":`+r.URL.Query().Get("n")+`}`)
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	for i := range 20 {
		q := "?n=" + string(rune('0'+i%10))
		if i%2 == 1 {
			q += "&chunked=1"
		}
		body := getOK(t, p.base+"/api/v1/get_result"+q)
		if !strings.HasSuffix(body, `{"credits":`+string(rune('0'+i%10))+`}`) {
			t.Fatalf("request %d got %q: answers crossed", i, body)
		}
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("20 sequential GETs used %d upstream connections, want 1", n)
	}
	// A submit takes net/http's transport, on its own connection.
	resp, _ := do(t, "POST", p.base+"/api/v1/delete_finetune", strings.NewReader(`{"finetune_id":"x"}`), nil)
	if resp.StatusCode != 200 || conns.opened.Load() != 2 {
		t.Errorf("POST: %d, connections %d, want 2", resp.StatusCode, conns.opened.Load())
	}
}

func TestFastPathRetriesAClosedIdleConnection(t *testing.T) {
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	getOK(t, p.base+"/api/v1/credits")
	deadline := time.Now().Add(10 * time.Second)
	for conns.closed.Load() == 0 { // wait for the upstream to drop the idle connection
		if time.Now().After(deadline) {
			t.Fatal("the upstream never closed its idle connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	getOK(t, p.base+"/api/v1/credits")
	if n := conns.opened.Load(); n != 2 {
		t.Errorf("connections %d, want 2 (the closed one replaced)", n)
	}
}

// After the upstream closed several pooled connections at once (a restart,
// a load balancer's idle sweep), the retry must not take another of them.
func TestFastPathRetryDialsAfterSeveralClosedConnections(t *testing.T) {
	var arrived atomic.Int32
	gate := make(chan struct{})
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hold") != "" {
			// Three requests in flight at once fill the pool with three
			// connections.
			if arrived.Add(1) == 3 {
				close(gate)
			}
			<-gate
		}
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { getOK(t, p.base+"/api/v1/credits?hold=1") })
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for conns.closed.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream closed %d of its 3 idle connections", conns.closed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	getOK(t, p.base+"/api/v1/credits")
}

func TestFastPathDoesNotReuseAfterConnectionClose(t *testing.T) {
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	for range 3 {
		getOK(t, p.base+"/api/v1/credits")
	}
	if n := conns.opened.Load(); n != 3 {
		t.Errorf("connections %d, want 3", n)
	}
}

func TestFastPathClientCancelReachesUpstream(t *testing.T) {
	entered, gone := make(chan struct{}), make(chan struct{})
	up, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(10 * time.Second):
		}
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		<-entered
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/api/v1/credits", nil)
	if resp, err := client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request should have been cancelled")
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client left")
	}
}

func TestFastPathOverTLS(t *testing.T) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto+" "+r.Header.Get("X-Key"))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.StartTLS()
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	fp := newFastPath(u, "k", 5*time.Second, 10*time.Second, 64<<10)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	fp.tls.RootCAs = roots
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 3 {
		resp, err := fp.Get(ctx, "/v1/credits", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "HTTP/1.1 k" {
			t.Fatalf("answer %q", b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("TLS connections %d, want 1", n)
	}
	// A certificate the client does not trust fails the handshake.
	fp2 := newFastPath(u, "k", 5*time.Second, 10*time.Second, 64<<10)
	if _, err := fp2.Get(ctx, "/v1/credits", nil); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("untrusted certificate: %v", err)
	}
}

// A catalog GET's answer reaches the client without the headers that only
// describe the upstream connection, and with the upstream's trailers.
func TestFastPathAnswerDropsHopByHopHeaders(t *testing.T) {
	up, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("X-End-To-End", "2")
		h.Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, `{"credits":1}`)
		w.(http.Flusher).Flush()
		h.Set("X-Checksum", "abc")
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil)
	if resp.StatusCode != 200 || body != `{"credits":1}` {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	for _, k := range []string{"X-Hop", "Keep-Alive"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("hop-by-hop header %s: %q reached the client", k, v)
		}
	}
	if v := resp.Header.Get("X-End-To-End"); v != "2" {
		t.Errorf("X-End-To-End = %q, want 2", v)
	}
	if v := resp.Trailer.Get("X-Checksum"); v != "abc" {
		t.Errorf("trailer X-Checksum = %q, want abc (trailers %v)", v, resp.Trailer)
	}
}

// The fast path writes the request head itself, so the exact bytes are
// pinned here: the forwarded headers with every value in order, the key,
// nothing else (no Go User-Agent, no cookie), and no header split by a
// line break hidden in a value.
func TestFastPathRequestHead(t *testing.T) {
	u, _ := url.Parse("https://api.example.test:8443")
	f := newFastPath(u, "the-key", time.Second, 10*time.Second, 64<<10)
	var buf strings.Builder
	bw := bufio.NewWriter(&buf)
	in := http.Header{
		"Accept-Language": {"de", "en;q=0.5"},
		"Accept":          {"application/json\r\nX-Evil: 1"},
		"Cookie":          {"session=1"},
		"X-Key":           {"client-key"},
		"Authorization":   {"Bearer t"},
	}
	if err := f.writeGet(bw, "/v1/get_result?id=a%20b&x=1", in); err != nil {
		t.Fatal(err)
	}
	want := "GET /v1/get_result?id=a%20b&x=1 HTTP/1.1\r\n" +
		"Host: api.example.test:8443\r\n" +
		"Accept: application/json  X-Evil: 1\r\n" +
		"Accept-Language: de\r\n" +
		"Accept-Language: en;q=0.5\r\n" +
		"X-Key: the-key\r\n" +
		"\r\n"
	if buf.String() != want {
		t.Errorf("request head:\n%q\nwant\n%q", buf.String(), want)
	}
	// What net/http's own server makes of it.
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(buf.String())))
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("X-Evil") != "" || req.Header.Get("X-Key") != "the-key" || req.Header.Get("User-Agent") != "" ||
		req.URL.Query().Get("id") != "a b" {
		t.Errorf("parsed as %v %v", req.URL, req.Header)
	}
}

// An upstream URL with a path keeps it, escaped, in front of /v1/.
func TestFastPathUpstreamPathPrefix(t *testing.T) {
	var got atomic.Value
	up, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.EscapedPath() + "?" + r.URL.RawQuery)
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL + "/bfl%20api"})
	getOK(t, p.base+"/api/v1/credits?a=%2F")
	if g := got.Load(); g != "/bfl%20api/v1/credits?a=%2F" {
		t.Errorf("upstream saw %v", g)
	}
}

// Pooled connections close once idle past their time, with no request to
// notice them, so none lingers half-closed after the upstream dropped it.
func TestFastPathClosesIdleConnectionsUnasked(t *testing.T) {
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, nil)
	u, _ := url.Parse(up.URL)
	f := newFastPath(u, testKey, 5*time.Second, 5*time.Second, 64<<10)
	t.Cleanup(f.close)
	f.idleFor = 100 * time.Millisecond
	for range 2 {
		resp, err := f.Get(t.Context(), "/v1/credits", http.Header{})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for conns.closed.Load() < conns.opened.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d upstream connections still open 5 s after going idle for 100 ms",
				conns.opened.Load()-conns.closed.Load(), conns.opened.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stopping the proxy closes its idle connections upstream, on the fast path
// and on both transports.
func TestUpstreamConnectionsCloseWithTheProxy(t *testing.T) {
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	getOK(t, p.base+"/api/v1/credits")
	do(t, "POST", p.base+"/api/v1/delete_finetune", strings.NewReader(`{"finetune_id":"x"}`), http.Header{"Content-Type": {"application/json"}})
	getOK(t, p.base+"/api/poll?url="+url.QueryEscape(up.URL+"/v1/get_result?id=1"))
	if n := conns.opened.Load(); n != 3 {
		t.Fatalf("%d upstream connections, want 3 (fast path, API transport, fetch transport)", n)
	}
	p.stopAndWait(t)
	deadline := time.Now().Add(5 * time.Second)
	for conns.closed.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 upstream connections closed 5 s after the proxy stopped", conns.closed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An answer followed by bytes it did not announce leaves its connection
// out of the pool: those bytes must not pass for the next request's answer.
func TestFastPathDropsAConnectionWithBytesPastTheAnswer(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			// One write: the answer, then a whole second answer nobody
			// asked for.
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"ok\":1}"+
				"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"forged\":1}")
		}
	})
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up})
	for i := range 3 {
		if body := getOK(t, p.base+"/api/v1/credits"); body != `{"ok":1}` {
			t.Fatalf("request %d got %s", i, body)
		}
	}
}

// What the fast path does with answers that are not what they seem: each
// must reach the client as a failure of the upstream, never as another
// answer, and be tried once only.
func TestFastPathRefusesAnswersThatAreNotAnswers(t *testing.T) {
	var requests atomic.Int64
	up := rawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			requests.Add(1)
			const forged = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"forged\":1}"
			switch req.URL.Query().Get("finetune_id") {
			case "below-100":
				_, _ = fmt.Fprintf(c, "HTTP/1.1 099 X\r\nContent-Length: %d\r\n\r\n%s", len(forged), forged)
			case "big-head":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Pad: "+strings.Repeat("p", 2000)+"\r\nContent-Length: 2\r\n\r\n{}")
			case "reset":
				reset(c)
				return
			default:
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
			}
		}
	})
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up, "MAX_HEADER_KB": "1"})
	for _, id := range []string{"below-100", "big-head", "reset"} {
		// A kept-alive connection first, so a retry would be allowed.
		if resp, body := do(t, "GET", p.base+"/api/v1/finetune_details?finetune_id=ok", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("plain answer: %d %s", resp.StatusCode, body)
		}
		before := requests.Load()
		resp, body := do(t, "GET", p.base+"/api/v1/finetune_details?finetune_id="+id, nil, nil)
		if resp.StatusCode != http.StatusBadGateway || strings.Contains(body, "forged") ||
			id == "big-head" && !strings.Contains(body, "MAX_HEADER_KB") {
			t.Errorf("%s: %d %s; want 502", id, resp.StatusCode, body)
		}
		// A reset before any answer may be retried once, on a new connection.
		if n := requests.Load() - before; n != 1 && id != "reset" {
			t.Errorf("%s: the upstream got the request %d times; an answer, even a broken one, must not be retried", id, n)
		}
	}
	logs := p.logsAfterStop(t)
	for _, tc := range []string{"status 99", "connection reset by peer"} {
		if !strings.Contains(logs, tc) {
			t.Errorf("no warning naming %q in the log:\n%s", tc, logs)
		}
	}
}

// Bytes an upstream sends on a kept-alive connection after its answer (a
// second answer, a 408 before it hangs up) must not pass for the answer to
// the next request sent on it.
func TestFastPathDropsConnectionsWithBytesUnasked(t *testing.T) {
	for _, late := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"forged\":1}",
		"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	} {
		up := rawUpstream(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for first := true; ; first = false {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"ok\":1}")
				if first {
					time.Sleep(50 * time.Millisecond)
					_, _ = io.WriteString(c, late)
				}
			}
		})
		p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up})
		for i := range 3 {
			if resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil); resp.StatusCode != http.StatusOK || body != `{"ok":1}` {
				t.Errorf("request %d after an upstream sent %q unasked: %d %s", i+1, late[:12], resp.StatusCode, body)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}
}

// heldWrites collects what is written to a connection until release sends
// it in one write, so two TLS records reach the peer together.
type heldWrites struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  []byte
}

func (h *heldWrites) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

func (h *heldWrites) setHold(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = on
	if !on {
		_, _ = h.Conn.Write(h.buf)
		h.buf = nil
	}
}

// Over TLS, a second answer sent with the first, in its own record, is read
// off the socket together with it and waits inside tls.Conn: the pool must
// see it there too.
func TestFastPathOverTLSDropsConnectionsWithARecordUnasked(t *testing.T) {
	certs := httptest.NewUnstartedServer(http.NotFoundHandler())
	certs.StartTLS()
	cert, leaf := certs.TLS.Certificates, certs.Certificate()
	certs.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var dials atomic.Int64
	var forged atomic.Bool
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			go func() {
				defer raw.Close()
				held := &heldWrites{Conn: raw}
				c := tls.Server(held, &tls.Config{Certificates: cert, NextProtos: []string{"http/1.1"}})
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					first := forged.CompareAndSwap(false, true)
					held.setHold(first)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"ok\":1}")
					if first {
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"forged\":1}")
						held.setHold(false)
					}
				}
			}()
		}
	}()
	u, _ := url.Parse("https://" + ln.Addr().String())
	fp := newFastPath(u, "k", 5*time.Second, 10*time.Second, 64<<10)
	fp.tls.RootCAs = x509.NewCertPool()
	fp.tls.RootCAs.AddCert(leaf)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		resp, err := fp.Get(ctx, "/v1/credits", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `{"ok":1}` {
			t.Errorf("answer %d: %s, another request's", i+1, b)
		}
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d connections; want 2, the first dropped for the record it held", n)
	}
}

// A connection whose last answer left its head deadline set, because the
// body came with the head, is still reused after that deadline has passed.
func TestFastPathReusesConnectionsPastTheirLastDeadline(t *testing.T) {
	up, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"credits":1}`)
	}, nil)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL, "UPSTREAM_TIMEOUT": "300ms"})
	for range 3 {
		getOK(t, p.base+"/api/v1/credits")
		time.Sleep(500 * time.Millisecond)
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("%d upstream connections for 3 GETs 500 ms apart with UPSTREAM_TIMEOUT=300ms; want 1", n)
	}
}
