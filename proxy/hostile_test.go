package proxy

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener accepts connections on 127.0.0.1 and counts them; any
// count above zero means the proxy connected somewhere it must not.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func newCountingListener(t *testing.T) *countingListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{Listener: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepts.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return c
}

func TestHostileURLsAreRefusedWithoutConnecting(t *testing.T) {
	trap := newCountingListener(t)
	port := trap.Addr().(*net.TCPAddr).Port
	ps := func(s string) string { return strings.ReplaceAll(s, "PORT", strconv.Itoa(port)) }

	up := newFakeBFL(t)
	// Redirects from the allowed upstream origin to places off the list.
	up.mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	p := startLive(t, up, nil)

	hostile := []string{
		// other schemes, and https to the trap itself
		"http://127.0.0.1:PORT/v1/get_result",
		"https://127.0.0.1:PORT/",
		"ftp://127.0.0.1:PORT/",
		"file:///etc/passwd",
		"gopher://127.0.0.1:PORT/",
		"javascript:alert(1)",
		// IP literals in every notation
		"https://2130706433:PORT/",
		"https://0x7f000001:PORT/",
		"https://0x7f.0x0.0x0.0x1:PORT/",
		"https://0177.0.0.1:PORT/",
		"https://127.1:PORT/",
		"https://127.0.1:PORT/",
		"https://[::1]:PORT/",
		"https://[::ffff:127.0.0.1]:PORT/",
		"https://[0:0:0:0:0:ffff:7f00:1]:PORT/",
		"https://[fe80::1%25lo]:PORT/",
		"https://0:PORT/",
		"https://localhost:PORT/",
		// userinfo tricks
		"https://api.us1.bfl.ai@127.0.0.1:PORT/",
		"https://api.us1.bfl.ai:443@127.0.0.1:PORT/",
		"https://user:pass@api.us1.bfl.ai/",
		"https://127.0.0.1:PORT#@api.us1.bfl.ai/",
		"https://127.0.0.1:PORT?@api.us1.bfl.ai/",
		// look-alike hosts
		"https://bfl.ai.127.0.0.1.nip.io:PORT/",
		"https://api.us1.bfl.ai.evil.com/",
		"https://evilbfl.ai/",
		"https://bfl.ai/",
		"https://api.us1.bfl.ai./",
		"https://api-us1-bfl.ai/",
		"https://аpi.us1.bfl.ai/", // Cyrillic a
		"https://xn--pi-7ld.us1.bfl.ai.evil.com/",
		// ports and encodings
		"https://api.us1.bfl.ai:PORT/",
		"https://api.us1.bfl.ai:8443/",
		"https://api%2eus1.bfl.ai/",
		"https://127.0.0.1%2f:PORT/",
		"//127.0.0.1:PORT/",
		"/v1/get_result?id=1",
		// the allowed origin's host on another port
		up.URL[:strings.LastIndexByte(up.URL, ':')] + ":PORT/",
		// redirects off the list, from the allowed origin
		up.URL + "/redirect?to=" + url.QueryEscape("http://127.0.0.1:PORT/"),
		up.URL + "/redirect?to=" + url.QueryEscape("http://localhost:PORT/"),
		up.URL + "/redirect?to=" + url.QueryEscape("https://2130706433:PORT/"),
		up.URL + "/redirect?to=" + url.QueryEscape("https://api.us1.bfl.ai@127.0.0.1:PORT/"),
	}
	if len(hostile) < 30 {
		t.Fatalf("only %d hostile URLs", len(hostile))
	}
	for _, route := range []string{"/api/poll", "/api/image"} {
		for _, h := range hostile {
			raw := ps(h)
			resp, body := do(t, "GET", p.base+route+"?url="+url.QueryEscape(raw), nil, nil)
			if resp.StatusCode < 400 || !strings.Contains(body, `"detail"`) {
				t.Errorf("%s %s: got %d %s, want a refusal", route, raw, resp.StatusCode, body)
			}
			if strings.Contains(body, testKey) {
				t.Errorf("%s %s: key in the refusal", route, raw)
			}
		}
	}
	// Give a stray dial time to land before counting.
	time.Sleep(100 * time.Millisecond)
	if n := trap.accepts.Load(); n != 0 {
		t.Fatalf("the proxy connected to the trap %d times", n)
	}
	if strings.Contains(p.logsAfterStop(t), testKey) {
		t.Error("key in the log")
	}

	// Control: with the trap as the allowed origin the same counter sees the
	// connection, so the zero above means something.
	p2 := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": ps("http://127.0.0.1:PORT")})
	resp, _ := do(t, "GET", p2.base+"/api/poll?url="+url.QueryEscape(ps("http://127.0.0.1:PORT/v1/get_result")), nil, nil)
	if resp.StatusCode != http.StatusBadGateway || trap.accepts.Load() == 0 {
		t.Fatalf("control: status %d, accepts %d; the trap should have been reached", resp.StatusCode, trap.accepts.Load())
	}
}

// A redirect between two allowed hosts is followed, but the key is never
// carried across it.
func TestRedirectDropsKey(t *testing.T) {
	up := newFakeBFL(t)
	up.mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/v1/get_result?id=moved", http.StatusFound)
	})
	p := startLive(t, up, nil)
	resp, body := do(t, "GET", p.base+"/api/poll?url="+url.QueryEscape(up.URL+"/moved"), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"moved"`) {
		t.Fatalf("allowed redirect: %d %s", resp.StatusCode, body)
	}
	reqs := up.requests()
	if len(reqs) != 2 {
		t.Fatalf("want 2 upstream requests, got %+v", reqs)
	}
	if reqs[0].header.Get("X-Key") != testKey || reqs[1].header.Get("X-Key") != "" {
		t.Errorf("x-key before/after the redirect: %q / %q", reqs[0].header.Get("X-Key"), reqs[1].header.Get("X-Key"))
	}
}

func TestDialGuard(t *testing.T) {
	guard := dialGuard(&url.URL{Scheme: "http", Host: "127.0.0.1:9000"})
	for addr, ok := range map[string]bool{
		"127.0.0.1:9000":        true,
		"[::1]:9000":            true,
		"127.0.0.1:9001":        false,
		"10.0.0.5:443":          false,
		"192.168.1.1:443":       false,
		"169.254.169.254:80":    false,
		"100.64.0.1:443":        false,
		"0.0.0.0:443":           false,
		"[::ffff:10.0.0.1]:443": false,
		"[fe80::1]:443":         false,
		"[fd00::1]:443":         false,
		"224.0.0.1:443":         false,
		"8.8.8.8:443":           true,
		"[2606:4700::1111]:443": true,
	} {
		if err := guard("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("guard(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
	if err := dialGuard(&url.URL{Scheme: "https", Host: "api.us1.bfl.ai"})("tcp", "127.0.0.1:443", nil); err == nil {
		t.Error("a public upstream must not open loopback")
	}
}

// keyRecorder stands in for the network: it records the host and x-key of
// every request that would have left the machine.
type keyRecorder struct {
	mu   sync.Mutex
	sent map[string]string // host -> x-key
}

func (k *keyRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	k.mu.Lock()
	k.sent[r.URL.Host] = r.Header.Get("X-Key")
	k.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"status":"Pending"}`)), Request: r}, nil
}

// With the default lists, a polling URL carries the key to BFL's API hosts
// and to nothing else under its domain: not a delivery host, not another
// site. Each refusal happens before a request is made.
func TestDefaultPollHostsSendTheKeyToAPIHostsOnly(t *testing.T) {
	cfg, err := loadConfig(getenv(map[string]string{"BFL_API_KEY": testKey}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	rec := &keyRecorder{sent: map[string]string{}}
	s.pollC.Transport = rec
	h := s.routes()

	for host, wantKey := range map[string]bool{
		"api.us1.bfl.ai": true, "api.eu4.bfl.ai": true, "api.us.bfl.ai": true, "api.bfl.ai": true,
		"delivery.us1.bfl.ai": false, "delivery.eu1.bfl.ai": false, "docs.bfl.ai": false, "bfl.ai": false,
		"bfldeliveryprod.blob.core.windows.net": false, "api.us1.bfl.ai.example.com": false,
	} {
		poll := "https://" + host + "/v1/get_result?id=task-1"
		req := httptest.NewRequest(http.MethodGet, "http://localhost/api/poll?url="+url.QueryEscape(poll), nil)
		req.RemoteAddr = "127.0.0.1:50000" // this machine, as a tokenless live proxy requires
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		key, sent := rec.sent[host]
		switch {
		case wantKey && (w.Code != http.StatusOK || key != testKey):
			t.Errorf("%s: %d %s, key sent %v; want the poll forwarded with the key", host, w.Code, w.Body, sent)
		case !wantKey && (sent || w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "POLL_HOSTS")):
			t.Errorf("%s: %d %s, request made %v; want 403 naming POLL_HOSTS and nothing sent", host, w.Code, w.Body, sent)
		}
	}
}
