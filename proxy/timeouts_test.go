package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

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

// closedWithin reads c until the proxy closes it and returns how long
// that took from since; it fails the test if c is still open after limit.
func closedWithin(t *testing.T, c net.Conn, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(since.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection was still open after %s", limit)
		}
		// A reset is a close too.
	}
	return time.Since(since)
}

func TestHeaderTimeoutClosesAConnectionThatNeverFinishesItsHeaders(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p := start(t, map[string]string{"HEADER_TIMEOUT": timeout.String(), "READ_TIMEOUT": "1m"})
	c := dialProxy(t, p)
	begin := time.Now()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	took := closedWithin(t, c, begin, 10*time.Second)
	if took < timeout {
		t.Errorf("closed after %s, before HEADER_TIMEOUT=%s", took, timeout)
	}
}

func TestIdleTimeoutClosesAnIdleKeptAliveConnection(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p := start(t, map[string]string{"IDLE_TIMEOUT": timeout.String()})
	c := dialProxy(t, p)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idleFrom := time.Now()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/healthz: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	took := closedWithin(t, c, idleFrom, 10*time.Second)
	if took < timeout*8/10 {
		t.Errorf("an idle connection closed after %s, before IDLE_TIMEOUT=%s", took, timeout)
	}
}

func TestMaxHeaderKB(t *testing.T) {
	p := start(t, map[string]string{"MAX_HEADER_KB": "16"})
	for _, tc := range []struct {
		kb   int
		want int
	}{
		{8, http.StatusOK},
		// net/http allows 4 KB over the cap before it refuses.
		{24, http.StatusRequestHeaderFieldsTooLarge},
	} {
		resp, _ := do(t, "GET", p.base+"/healthz", nil, http.Header{"X-Big": {strings.Repeat("a", tc.kb<<10)}})
		if resp.StatusCode != tc.want {
			t.Errorf("a %d KB header under MAX_HEADER_KB=16: %d, want %d", tc.kb, resp.StatusCode, tc.want)
		}
	}
}
