package proxy

import (
	"encoding/json"
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

const testKey = "bfl-key-7f3a9c1e-DO-NOT-LEAK"

// seen is one request as the fake upstream received it.
type seen struct {
	method, path, query string
	header              http.Header
	bodyLen             int64
}

// fakeBFL is a local upstream that records what reaches it. Its handler
// serves a few BFL-like paths and whatever extra routes a test adds.
type fakeBFL struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	mux  *http.ServeMux
	// conns counts accepted connections, requests or not.
	conns atomic.Int64
}

func newFakeBFL(t testing.TB) *fakeBFL {
	f := &fakeBFL{mux: http.NewServeMux()}
	f.mux.HandleFunc("GET /v1/credits", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "upstream-cookie"})
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"credits": 42.5}`)
	})
	f.mux.HandleFunc("POST /v1/flux-pro-1.1-ultra-finetuned", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"task-1","polling_url":"`+f.URL+`/v1/get_result?id=task-1"}`)
	})
	f.mux.HandleFunc("POST /v1/finetune", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"ft-1","polling_url":"`+f.URL+`/v1/get_result?id=ft-1"}`)
	})
	f.mux.HandleFunc("GET /v1/get_result", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"`+r.URL.Query().Get("id")+`","status":"Ready","result":{"sample":"`+f.URL+`/delivery/a.png"},"progress":1}`)
	})
	f.mux.HandleFunc("GET /delivery/a.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(tinyPNG)
	})
	f.mux.HandleFunc("GET /v1/my_finetunes", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // a bodiless 5xx
	})
	f.mux.HandleFunc("GET /v1/finetune_details", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>bad gateway</html>")
	})
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), n})
		f.mu.Unlock()
		f.mux.ServeHTTP(w, r)
	}))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeBFL) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// tinyPNG is a 1x1 PNG.
var tinyPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

func startLive(t testing.TB, up *fakeBFL, extra map[string]string) *running {
	return start(t, withDefaults(extra, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL}))
}

// noKey fails the test if the key appears in any header or body the client got.
func noKey(t *testing.T, where string, resp *http.Response, body string) {
	t.Helper()
	if strings.Contains(body, testKey) {
		t.Errorf("%s: the key is in the response body", where)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			if strings.Contains(v, testKey) {
				t.Errorf("%s: the key is in response header %s", where, k)
			}
		}
	}
}

func TestLiveKeyInjectionAndRedaction(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"PROXY_TOKEN": "tok"})
	clientHeaders := http.Header{
		"X-Key":         {"client-supplied-key"},
		"Cookie":        {"pwa=1"},
		"Authorization": {"Bearer tok"},
		"Content-Type":  {"application/json"},
		"Referer":       {"http://localhost/secret-page"},
	}

	resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, clientHeaders)
	if resp.StatusCode != 200 || !strings.Contains(body, "42.5") {
		t.Fatalf("credits: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("upstream Set-Cookie/CORS leaked to the client: %v", resp.Header)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	noKey(t, "credits", resp, body)

	resp, body = do(t, "POST", p.base+"/api/v1/flux-pro-1.1-ultra-finetuned", strings.NewReader(`{"prompt":"a cat","finetune_id":"x"}`), clientHeaders)
	if resp.StatusCode != 200 {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	noKey(t, "submit", resp, body)
	var submit struct {
		PollingURL string `json:"polling_url"`
	}
	if err := json.Unmarshal([]byte(body), &submit); err != nil {
		t.Fatal(err)
	}

	resp, body = do(t, "GET", p.base+"/api/poll?url="+url.QueryEscape(submit.PollingURL), nil, clientHeaders)
	if resp.StatusCode != 200 || !strings.Contains(body, `"Ready"`) {
		t.Fatalf("poll: %d %s", resp.StatusCode, body)
	}
	noKey(t, "poll", resp, body)

	resp, body = do(t, "GET", p.base+"/api/image?url="+url.QueryEscape(up.URL+"/delivery/a.png?sig=s3cret"), nil, clientHeaders)
	if resp.StatusCode != 200 || body != string(tinyPNG) || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("image: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	noKey(t, "image", resp, body)

	for _, path := range []string{"/api/v1/my_finetunes", "/api/v1/finetune_details?finetune_id=1"} {
		resp, body = do(t, "GET", p.base+path, nil, clientHeaders)
		var detail struct{ Detail string }
		if resp.StatusCode < 500 || json.Unmarshal([]byte(body), &detail) != nil || detail.Detail == "" {
			t.Errorf("%s: a failing upstream should give a 5xx with a JSON detail, got %d %q", path, resp.StatusCode, body)
		}
		noKey(t, path, resp, body)
	}

	reqs := up.requests()
	if len(reqs) != 6 {
		t.Fatalf("upstream saw %d requests, want 6: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		key := r.header.Values("X-Key")
		if strings.HasPrefix(r.path, "/delivery/") {
			if len(key) != 0 {
				t.Errorf("the image fetch sent x-key %v to the delivery host", key)
			}
			if r.query != "sig=s3cret" {
				t.Errorf("image query %q", r.query)
			}
		} else if len(key) != 1 || key[0] != testKey {
			t.Errorf("%s %s: upstream got x-key %q, want exactly the configured key", r.method, r.path, key)
		}
		for _, h := range []string{"Cookie", "Authorization", "Referer", "X-Forwarded-For"} {
			if v := r.header.Get(h); v != "" {
				t.Errorf("%s %s: client header %s=%q reached upstream", r.method, r.path, h, v)
			}
		}
	}
	if got := reqs[1]; got.path != "/v1/flux-pro-1.1-ultra-finetuned" || got.bodyLen != 36 || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("submit reached upstream as %+v", got)
	}
	if reqs[5].query != "finetune_id=1" {
		t.Errorf("query not forwarded: %q", reqs[5].query)
	}

	up.Close() // now unreachable
	resp, body = do(t, "GET", p.base+"/api/v1/credits", nil, clientHeaders)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `"detail"`) {
		t.Errorf("unreachable upstream: %d %s", resp.StatusCode, body)
	}
	noKey(t, "unreachable", resp, body)
	resp, body = do(t, "GET", p.base+"/api/poll?url="+url.QueryEscape(submit.PollingURL), nil, clientHeaders)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("unreachable poll host: %d %s", resp.StatusCode, body)
	}
	noKey(t, "unreachable poll", resp, body)

	logs := p.logsAfterStop(t) + p.stdout.String()
	if strings.Contains(logs, testKey) {
		t.Error("the key appears in the proxy's output")
	}
	if strings.Contains(logs, "s3cret") {
		t.Error("a signed URL's query appears in the log")
	}
	for _, want := range []string{`"path":"/api/v1/credits"`, `"status":502`, `"target":"127.0.0.1:`, `"method":"POST"`, `"bytes":`, `"duration_ms":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestLiveUpstreamTimeout(t *testing.T) {
	up := newFakeBFL(t)
	up.mux = http.NewServeMux()
	release := make(chan struct{})
	up.mux.HandleFunc("GET /v1/finetune_details", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	})
	defer close(release)
	p := startLive(t, up, map[string]string{"UPSTREAM_TIMEOUT": "200ms"})
	resp, body := do(t, "GET", p.base+"/api/v1/finetune_details?finetune_id=1", nil, nil)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "UPSTREAM_TIMEOUT") {
		t.Fatalf("slow upstream: %d %s", resp.StatusCode, body)
	}
}

// bfl-api.md: finetuning and finetuned inference are regional, and BFL
// documents the global host as unsuitable for them. Pointing the proxy
// there would only show up later, as a training or a model that is not
// found, so start-up says so.
func TestBannerWarnsAboutTheGlobalHost(t *testing.T) {
	for url, warn := range map[string]bool{
		"https://api.bfl.ai":     true,
		"https://api.bfl.ai/":    true,
		"https://api.us1.bfl.ai": false,
		"https://api.eu.bfl.ai":  false,
	} {
		p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": url})
		out := p.stdout.String()
		if got := strings.Contains(out, "regional"); got != warn {
			t.Errorf("BFL_API_URL=%s: warning shown %v, want %v:\n%s", url, got, warn, out)
		}
	}
}
