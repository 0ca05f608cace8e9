package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"PROXY_TOKEN": "s3cret-token"})
	for _, c := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer s3cret-token-and-more", http.StatusUnauthorized},
		{"bearer s3cret-token", http.StatusUnauthorized},
		{"Basic s3cret-token", http.StatusUnauthorized},
		{"Bearer s3cret-token", http.StatusOK},
	} {
		hdr := http.Header{}
		if c.auth != "" {
			hdr.Set("Authorization", c.auth)
		}
		for _, path := range []string{"/api/v1/credits", "/api/config"} {
			resp, body := do(t, "GET", p.base+path, nil, hdr)
			if resp.StatusCode != c.want {
				t.Errorf("%s with %q: %d %s, want %d", path, c.auth, resp.StatusCode, body, c.want)
			}
			if c.want == http.StatusUnauthorized && !strings.Contains(body, `"detail"`) {
				t.Errorf("401 body %q is not BFL-shaped JSON", body)
			}
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want only the authorised one", n)
	}
	resp, body := do(t, "GET", p.base+"/healthz", nil, nil)
	var h map[string]string
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &h) != nil || h["mode"] != "live" || h["upstream"] != strings.TrimPrefix(up.URL, "http://") || h["version"] == "" {
		t.Errorf("/healthz without a token: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, testKey) {
		t.Error("/healthz shows the key")
	}
	if resp, _ := do(t, "GET", p.base+"/", nil, nil); resp.StatusCode == http.StatusUnauthorized {
		t.Error("the site must stay open")
	}
}

func TestCORS(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"CORS_ORIGINS": "https://app.example.com", "PROXY_TOKEN": "tok"})
	for _, c := range []struct {
		origin string
		allow  bool
	}{{"https://app.example.com", true}, {"https://evil.example.com", false}, {"http://app.example.com", false}} {
		// Preflight: browsers send the header list sorted and lower-case.
		resp, _ := do(t, "OPTIONS", p.base+"/api/v1/flux-pro-1.1-ultra-finetuned", nil, http.Header{
			"Origin": {c.origin}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization,content-type"},
		})
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if (got == c.origin) != c.allow {
			t.Errorf("preflight from %s: ACAO %q, allowed=%v", c.origin, got, c.allow)
		}
		if c.allow {
			if resp.Header.Get("Access-Control-Max-Age") != "600" || !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
				t.Errorf("preflight headers: %v", resp.Header)
			}
		}
		for _, path := range []string{"/api/v1/credits", "/healthz"} {
			resp, _ = do(t, "GET", p.base+path, nil, http.Header{"Origin": {c.origin}, "Authorization": {"Bearer tok"}})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); (got == c.origin) != c.allow {
				t.Errorf("GET %s from %s: ACAO %q", path, c.origin, got)
			}
			// The PWA reads these from an error answer; a browser hides
			// any header a cross-origin page is not told it may read.
			if expose := resp.Header.Get("Access-Control-Expose-Headers"); c.allow && path != "/healthz" {
				for _, h := range []string{"Retry-After", notSentHeader, requestIDHeader} {
					if !strings.Contains(expose, h) {
						t.Errorf("GET %s: %s not exposed (%q)", path, h, expose)
					}
				}
			}
		}
	}
	resp, _ := do(t, "GET", p.base+"/", nil, http.Header{"Origin": {"https://app.example.com"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the site itself should not carry CORS headers")
	}
}

// An upstream's informational answer (103 Early Hints) is not passed on,
// and the final answer keeps the headers this proxy set before forwarding:
// ReverseProxy clears the header map after a 1xx, and without its CORS
// headers a cross-origin PWA could not read a submit's answer.
func TestUpstream1xxKeepsTheProxysHeaders(t *testing.T) {
	up := newFakeBFL(t)
	up.mux.HandleFunc("POST /v1/flux-pro-1.0-fill-finetuned", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"t","polling_url":"x"}`)
	})
	p := startLive(t, up, map[string]string{"CORS_ORIGINS": "https://app.example.com", "PROXY_TOKEN": "tok"})
	c := dialProxy(t, p)
	body := `{"finetune_id":"ft-1","prompt":"a TOK"}`
	_, _ = fmt.Fprintf(c, "POST /api/v1/flux-pro-1.0-fill-finetuned HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example.com\r\n"+
		"Authorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first answer %d, want the final 200 and no 1xx before it", resp.StatusCode)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("final answer lost the proxy's headers: %v", resp.Header)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the 1xx's Link header leaked into the answer: %v", resp.Header)
	}
}

// An origin listed as people write it (capitals, the default port) is the
// one browsers send, to the origin guard as to CORS.
func TestCORSOriginsAsWritten(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"CORS_ORIGINS": "https://App.Example.com:443/,HTTP://LOCALHOST:80", "PROXY_TOKEN": "tok"})
	for _, origin := range []string{"https://app.example.com", "http://localhost"} {
		resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, http.Header{"Origin": {origin}, "Authorization": {"Bearer tok"}})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("GET from %s: %d %s, ACAO %q; want it allowed", origin, resp.StatusCode, body, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

func TestUnknownEndpointAndWrongMethod(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, nil)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/flux-dev", http.StatusNotFound},
		{"POST", "/api/v1/../admin", http.StatusNotFound},
		{"GET", "/api/v1/credits/extra", http.StatusNotFound},
		{"GET", "/api/v2/credits", http.StatusNotFound},
		{"GET", "/api/v1/", http.StatusNotFound},
		{"GET", "/api/v1/finetune", http.StatusMethodNotAllowed},
		{"POST", "/api/v1/credits", http.StatusMethodNotAllowed},
		{"DELETE", "/api/v1/delete_finetune", http.StatusMethodNotAllowed},
		{"POST", "/api/poll", http.StatusMethodNotAllowed},
		{"GET", "/api/poll", http.StatusBadRequest},
	} {
		resp, body := do(t, c.method, p.base+c.path, strings.NewReader("{}"), nil)
		if resp.StatusCode != c.want || !strings.Contains(body, `"detail"`) {
			t.Errorf("%s %s: %d %s, want %d with a detail", c.method, c.path, resp.StatusCode, body, c.want)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream saw %d requests, want none", n)
	}
}

func TestClientConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ui.json")
	if err := os.WriteFile(file, []byte(`{"flags":{"legacyEndpoints":false},"ui":{"defaultEndpoint":"flux-pro-1.1-ultra-finetuned"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, map[string]string{"CONFIG_FILE": file})
	resp, body := do(t, "GET", p.base+"/api/config", nil, nil)
	var got struct {
		Mode, Upstream string
		Flags, UI      map[string]any
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got.Mode != "simulated" || got.Upstream != "api.sim.bfl.test" || got.Flags["legacyEndpoints"] != false || got.UI["defaultEndpoint"] != "flux-pro-1.1-ultra-finetuned" {
		t.Errorf("config %+v", got)
	}
}

func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	up := newFakeBFL(t)
	up.mux = http.NewServeMux()
	entered := make(chan struct{})
	up.mux.HandleFunc("GET /v1/credits", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(500 * time.Millisecond)
		_, _ = w.Write([]byte(`{"credits":7}`))
	})
	p := startLive(t, up, nil)
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client().Get(p.base + "/api/v1/credits")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached upstream")
	}
	p.stopAndWait(t)
	r := <-got
	if r.err != nil || r.status != 200 || r.body != `{"credits":7}` {
		t.Fatalf("in-flight request: %+v", r)
	}
	if _, err := client().Get(p.base + "/healthz"); err == nil {
		t.Error("the proxy still accepts connections after shutdown")
	}
}

// Another web page must not be able to spend the user's credits: its
// requests carry its Origin, or (DNS rebinding) a Host that is its own name.
func TestOtherPagesCannotCallTheAPI(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, nil)
	submit := func(base string, hdr http.Header, host string) int {
		req, err := http.NewRequest("POST", base+"/api/v1/flux-pro-1.1-ultra-finetuned", strings.NewReader(`{"prompt":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
		if host != "" {
			req.Host = host
		}
		resp, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	port := p.base[strings.LastIndexByte(p.base, ':')+1:]
	for _, c := range []struct {
		name   string
		hdr    http.Header
		host   string
		status int
	}{
		{"cross-site form post", http.Header{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}}, "", http.StatusForbidden},
		{"sandboxed page", http.Header{"Origin": {"null"}}, "", http.StatusForbidden},
		{"same host, other port", http.Header{"Origin": {"http://127.0.0.1:1"}}, "", http.StatusForbidden},
		{"DNS rebinding", http.Header{"Origin": {"http://rebind.evil.example:" + port}}, "rebind.evil.example:" + port, http.StatusForbidden},
		{"the PWA itself", http.Header{"Origin": {p.base}}, "", http.StatusOK},
		{"the PWA on localhost", http.Header{"Origin": {"http://localhost:" + port}}, "localhost:" + port, http.StatusOK},
		{"curl (no Origin)", http.Header{}, "", http.StatusOK},
	} {
		if got := submit(p.base, c.hdr, c.host); got != c.status {
			t.Errorf("%s: %d, want %d", c.name, got, c.status)
		}
	}
	if n := len(up.requests()); n != 3 {
		t.Errorf("upstream saw %d submits, want only the 3 allowed", n)
	}

	// With a token the proxy may be served under a name, and CORS_ORIGINS
	// may call it.
	p2 := startLive(t, up, map[string]string{"PROXY_TOKEN": "tok", "CORS_ORIGINS": "https://app.example.com"})
	auth := "Bearer tok"
	if got := submit(p2.base, http.Header{"Authorization": {auth}, "Origin": {"https://app.example.com"}}, "proxy.example.com"); got != http.StatusOK {
		t.Errorf("listed origin to a named proxy: %d", got)
	}
	if got := submit(p2.base, http.Header{"Authorization": {auth}, "Origin": {"https://evil.example"}}, "proxy.example.com"); got != http.StatusForbidden {
		t.Errorf("unlisted origin, even with the token: %d", got)
	}
}

// Without a token a live proxy answers this machine only, whatever address
// it listens on: a neighbour on the network must not spend the key's
// credits. The simulator spends nothing and answers anyone; a token opens
// the live proxy to other machines.
func TestWithoutATokenOnlyThisMachineSpendsCredits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		peers   map[string]int // RemoteAddr -> status
		withTok bool
	}{
		{"live, no token", map[string]string{"BFL_API_KEY": testKey}, map[string]int{
			"127.0.0.1:50000": 200, "[::1]:50000": 200, "[::ffff:127.0.0.1]:50000": 200,
			"192.168.1.20:50000": 403, "10.0.0.7:50000": 403, "[fe80::1]:50000": 403, "[2001:db8::1]:50000": 403,
		}, false},
		{"simulated, no token", nil, map[string]int{"192.168.1.20:50000": 200}, false},
		{"live with a token", map[string]string{"BFL_API_KEY": testKey, "PROXY_TOKEN": "tok"}, map[string]int{
			"192.168.1.20:50000": 200}, true},
	} {
		cfg, err := loadConfig(getenv(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		s, err := newServer(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		h := s.routes()
		for peer, want := range tc.peers {
			req := httptest.NewRequest(http.MethodGet, "http://192.168.1.5:8080/api/config", nil)
			req.RemoteAddr = peer
			if tc.withTok {
				req.Header.Set("Authorization", "Bearer tok")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != want || (want == 403 && !strings.Contains(w.Body.String(), "PROXY_TOKEN")) {
				t.Errorf("%s, from %s: %d %s; want %d", tc.name, peer, w.Code, w.Body, want)
			}
		}
		s.close()
	}
}
