package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write
// while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a proxy started by Run on a free loopback port.
type running struct {
	base   string
	stdout *syncBuffer
	logs   *syncBuffer
	stop   context.CancelFunc
	done   chan error
}

// start runs the proxy with exactly the given environment (ADDR defaults to
// a free loopback port) and stops it when the test ends.
func start(t testing.TB, vars map[string]string) *running {
	t.Helper()
	return startWith(t, vars, nil)
}

// startWith is start with the request log going to logs instead of a
// buffer the test can read (benchmarks log too much to keep).
func startWith(t testing.TB, vars map[string]string, logs io.Writer) *running {
	t.Helper()
	vars = withDefaults(vars, map[string]string{"ADDR": "127.0.0.1:0", "SITE_DIR": t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	p := &running{stdout: &syncBuffer{}, logs: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	if logs == nil {
		logs = p.logs
	}
	go func() { p.done <- Run(ctx, func(k string) string { return vars[k] }, p.stdout, logs) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.stdout.String()
		if _, after, ok := strings.Cut(out, "listening on "); ok {
			p.base, _, _ = strings.Cut(after, "\n")
			break
		}
		select {
		case err := <-p.done:
			t.Fatalf("Run returned before listening: %v\nstdout: %s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line within 10s; stdout: %s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return within 15s of cancel")
		}
	})
	return p
}

// stopAndWait stops the proxy and waits for Run to return.
func (p *running) stopAndWait(t testing.TB) {
	t.Helper()
	p.stop()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		p.done <- nil // for the cleanup started by start
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of stop")
	}
}

// logsAfterStop stops the proxy and gives its whole log: a request's line
// is written after its answer has gone out, so only a stopped proxy's log
// is sure to hold every line.
func (p *running) logsAfterStop(t testing.TB) string {
	t.Helper()
	p.stopAndWait(t)
	return p.logs.String()
}

func withDefaults(vars, defaults map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

// client has a deadline on every request, as every network test must.
func client() *http.Client {
	return &http.Client{Timeout: 20 * time.Second}
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, method, url string, body io.Reader, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

// dialProxy opens a raw connection to the proxy, for tests that must send
// less than a whole request or stop reading.
func dialProxy(t *testing.T, p *running) net.Conn {
	t.Helper()
	u, err := url.Parse(p.base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawUpstream is an upstream that speaks plain TCP: serve gets each
// connection and may break HTTP in ways net/http's server never would. It
// returns the upstream's http:// URL.
func rawUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}
