package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDebugAddrMustBeLoopback(t *testing.T) {
	for _, addr := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "192.168.1.5:6060", "example.com:6060", "127.0.0.1"} {
		_, err := loadConfig(getenv(map[string]string{"DEBUG_ADDR": addr}))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "DEBUG_ADDR") {
			t.Errorf("DEBUG_ADDR=%q: got %v, want a configuration error naming DEBUG_ADDR", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "localhost:0", "[::1]:6060"} {
		if _, err := loadConfig(getenv(map[string]string{"DEBUG_ADDR": addr})); err != nil {
			t.Errorf("DEBUG_ADDR=%q: %v", addr, err)
		}
	}
}

// notProfile fails if the public listener answers url with a profile.
func notProfile(t *testing.T, url string) {
	t.Helper()
	_, body := do(t, "GET", url, nil, nil)
	if strings.Contains(body, "goroutine profile") {
		t.Errorf("%s served a profile on the public listener", url)
	}
}

func TestDebugIsOffByDefault(t *testing.T) {
	p := start(t, nil)
	if strings.Contains(p.stdout.String(), "debug:") {
		t.Errorf("banner mentions a debug listener without DEBUG_ADDR:\n%s", p.stdout)
	}
	notProfile(t, p.base+"/debug/pprof/goroutine?debug=1")
}

func TestDebugServesGoroutineProfileOnItsOwnListener(t *testing.T) {
	p := start(t, map[string]string{"DEBUG_ADDR": "127.0.0.1:0"})
	m := regexp.MustCompile(`debug: pprof on (http://127\.0\.0\.1:\d+)/debug/pprof/`).FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("banner names no debug listener:\n%s", p.stdout)
	}
	resp, body := do(t, "GET", m[1]+"/debug/pprof/goroutine?debug=1", nil, nil)
	total := regexp.MustCompile(`goroutine profile: total (\d+)`).FindStringSubmatch(body)
	if resp.StatusCode != 200 || total == nil {
		t.Fatalf("goroutine profile: %d %.200q", resp.StatusCode, body)
	}
	if n, _ := strconv.Atoi(total[1]); n < 1 {
		t.Errorf("goroutine total %d", n)
	}
	notProfile(t, p.base+"/debug/pprof/goroutine?debug=1")

	// A page that points its own name at 127.0.0.1 gets nothing.
	req, err := http.NewRequest("GET", m[1]+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "rebound.example.com"
	rebound, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rebound.Body)
	rebound.Body.Close()
	if rebound.StatusCode != http.StatusForbidden || strings.Contains(string(got), "goroutine profile") {
		t.Errorf("addressed to another name: %d %.200q", rebound.StatusCode, got)
	}
	// A profile of a day is refused up front, not run.
	resp, body = do(t, "GET", m[1]+"/debug/pprof/profile?seconds=100000", nil, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "seconds: at most 120") {
		t.Errorf("a 100000 s profile: %d %.200q", resp.StatusCode, body)
	}

	// Stopping the proxy closes the debug listener too.
	p.stop()
	addr := strings.TrimPrefix(m[1], "http://")
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the debug listener still accepts 15s after the stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
