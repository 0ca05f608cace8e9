package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

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

// lanePaths are a page net/http serves and an API GET lane serves; every
// connection limit must hold on both.
var lanePaths = []string{"/healthz", "/api/v1/credits"}

func TestHeaderTimeoutClosesAConnectionThatNeverFinishesItsHeaders(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p := start(t, map[string]string{"HEADER_TIMEOUT": timeout.String(), "READ_TIMEOUT": "1m"})
	for _, path := range lanePaths {
		c := dialProxy(t, p)
		begin := time.Now()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		took := closedWithin(t, c, begin, 10*time.Second)
		if took < timeout {
			t.Errorf("%s: closed after %s, before HEADER_TIMEOUT=%s", path, took, timeout)
		}
	}
}

// A connection that never sends a request gets HEADER_TIMEOUT, not the
// IDLE_TIMEOUT a kept-alive one waits between requests.
func TestAConnectionThatSendsNothingClosesAtHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p := start(t, map[string]string{"HEADER_TIMEOUT": timeout.String(), "IDLE_TIMEOUT": "1m"})
	c := dialProxy(t, p)
	if took := closedWithin(t, c, time.Now(), 10*time.Second); took < timeout {
		t.Errorf("closed after %s, before HEADER_TIMEOUT=%s", took, timeout)
	}
}

func TestIdleTimeoutClosesAnIdleKeptAliveConnection(t *testing.T) {
	const timeout = time.Second
	p := start(t, map[string]string{"IDLE_TIMEOUT": timeout.String()})
	for _, path := range lanePaths {
		c := dialProxy(t, p)
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
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
			t.Fatalf("%s: %d, close %v; want 200 on a kept-alive connection", path, resp.StatusCode, resp.Close)
		}
		took := closedWithin(t, c, idleFrom, 10*time.Second)
		// The server's idle clock starts as it finishes the answer, a little
		// before this client has read it; half the timeout leaves room for a
		// slow machine.
		if took < timeout/2 {
			t.Errorf("%s: an idle connection closed after %s, before IDLE_TIMEOUT=%s", path, took, timeout)
		}
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

func TestReadTimeoutCutsAStalledUploadAndSaysSo(t *testing.T) {
	const timeout = 500 * time.Millisecond
	p := startLive(t, newFakeBFL(t), map[string]string{"READ_TIMEOUT": timeout.String()})
	c := dialProxy(t, p)
	head := "POST /api/v1/flux-pro-1.0-fill-finetuned HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
	if _, err := io.WriteString(c, head+`{"image":"`+strings.Repeat("A", 1000)); err != nil {
		t.Fatal(err)
	}
	// The client stalls here, 99 KB short, but still listens.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The body never arrived whole, so BFL cannot have taken the task: the
	// answer must blame the client's link, not BFL, and not warn of a
	// possible double charge.
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "READ_TIMEOUT="+timeout.String()) ||
		strings.Contains(string(body), "may have reached BFL") {
		t.Errorf("stalled upload: %d %s; want 408 naming READ_TIMEOUT", resp.StatusCode, body)
	}
	if resp.Header.Get(notSentHeader) != "true" {
		t.Errorf("stalled upload: no %s header", notSentHeader)
	}
}

func TestWriteTimeoutFreesWhatAStalledDownloadHeld(t *testing.T) {
	up := newFakeBFL(t)
	const size = 48 << 20 // more than loopback's socket buffers hold
	fetched := make(chan error, 1)
	up.mux.HandleFunc("GET /delivery/huge.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := make([]byte, 64<<10)
		copy(chunk, tinyPNG)
		var err error
		for sent := 0; sent < size && err == nil; sent += len(chunk) {
			_, err = w.Write(chunk)
		}
		fetched <- err
	})
	const timeout = 2 * time.Second
	p := startLive(t, up, map[string]string{"WRITE_TIMEOUT": timeout.String(), "MAX_CONCURRENT": "1"})
	c := dialProxy(t, p)
	if _, err := fmt.Fprintf(c, "GET /api/image?url=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", url.QueryEscape(up.URL+"/delivery/huge.png")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("image: %v %v", resp, err)
	}
	// The client reads no further.
	select {
	case err := <-fetched:
		if err == nil {
			t.Error("the whole image was fetched for a client that had stopped reading")
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the fetch for a client that stopped reading was still open 15s later (WRITE_TIMEOUT=%s)", timeout)
	}
	// Its MAX_CONCURRENT slot is free again.
	if resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after the stalled download: %d %s", resp.StatusCode, body)
	}
}

// silentHTTPS accepts connections and never answers, like a host behind a
// broken middlebox: a TLS handshake with it never completes.
func silentHTTPS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range held {
			_ = c.Close()
		}
	})
	return "https://" + ln.Addr().String()
}

func TestConnectTimeoutSaysNothingWasSent(t *testing.T) {
	const timeout = 300 * time.Millisecond
	upstream := silentHTTPS(t)
	p := start(t, map[string]string{
		"BFL_API_KEY": testKey, "BFL_API_URL": upstream,
		"CONNECT_TIMEOUT": timeout.String(), "UPSTREAM_TIMEOUT": "1m",
	})
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"catalog GET", "GET", "/api/v1/credits", ""},
		{"submit", "POST", "/api/v1/flux-pro-1.1-ultra-finetuned", `{"finetune_id":"ft-1","prompt":"a TOK"}`},
		{"poll", "GET", "/api/poll?url=" + url.QueryEscape(upstream+"/v1/get_result?id=task-1"), ""},
	} {
		begin := time.Now()
		resp, body := do(t, tc.method, p.base+tc.path, strings.NewReader(tc.body), http.Header{"Content-Type": {"application/json"}})
		took := time.Since(begin)
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "CONNECT_TIMEOUT="+timeout.String()) {
			t.Errorf("%s: %d %s; want 504 naming CONNECT_TIMEOUT", tc.name, resp.StatusCode, body)
		}
		// No connection was made, so no submit can have reached BFL.
		if strings.Contains(body, "may have reached BFL") || strings.Contains(body, "UPSTREAM_TIMEOUT") {
			t.Errorf("%s: %s; a connection that never opened cannot have carried the request", tc.name, body)
		}
		if took > 5*time.Second {
			t.Errorf("%s: answered after %s with CONNECT_TIMEOUT=%s", tc.name, took, timeout)
		}
		if tc.name != "poll" && resp.Header.Get(notSentHeader) != "true" {
			t.Errorf("%s: no %s header for the PWA", tc.name, notSentHeader)
		}
	}
}

func TestRefusedConnectionSaysNothingWasSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := "http://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": upstream})
	resp, body := do(t, "POST", p.base+"/api/v1/flux-pro-1.1-ultra-finetuned", strings.NewReader(`{"finetune_id":"ft-1"}`),
		http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "nothing was sent") || strings.Contains(body, "may have reached BFL") {
		t.Errorf("submit to a closed port: %d %s; want 502 saying nothing was sent", resp.StatusCode, body)
	}
	if resp.Header.Get(notSentHeader) != "true" {
		t.Errorf("submit to a closed port: no %s header", notSentHeader)
	}
}

// endlessHead is an upstream whose answer head never ends: header lines
// until 64 MB are written or the proxy hangs up. It reports how much it
// wrote.
func endlessHead(t *testing.T) (string, <-chan int) {
	t.Helper()
	wrote := make(chan int, 8)
	up := rawUpstream(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096)) // the request
		line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
		n, _ := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"))
		for n < 64<<20 {
			m, err := c.Write(line)
			n += m
			if err != nil {
				break
			}
		}
		wrote <- n
	})
	return up, wrote
}

// However the cap falls across a header line, mid-name or mid-value, the
// answer names MAX_HEADER_KB: textproto reports a line cut inside its name
// as a malformed header, not as the reader's error.
func TestAHeadCutAnywhereNamesMaxHeaderKB(t *testing.T) {
	pad := make(chan int, 1)
	up := rawUpstream(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096)) // the request
		head := "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("p", <-pad) + "\r\n"
		for i := 0; len(head) < 4<<10; i++ {
			head += fmt.Sprintf("X-Some-Long-Header-Name-%04d: 1\r\n", i)
		}
		_, _ = io.WriteString(c, head+"\r\n{}")
	})
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up, "MAX_HEADER_KB": "1"})
	// A header line here is 33 bytes: these paddings put the cap at every
	// offset within one.
	for n := range 33 {
		pad <- n
		resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "MAX_HEADER_KB=1") {
			t.Errorf("padding %d: %d %s; want 502 naming MAX_HEADER_KB", n, resp.StatusCode, body)
		}
	}
}

func TestAnAnswerHeadOverMaxHeaderKBIsCutOff(t *testing.T) {
	upstream, wrote := endlessHead(t)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": upstream, "MAX_HEADER_KB": "64", "UPSTREAM_TIMEOUT": "20s"})
	for _, tc := range []struct{ name, method, path string }{
		{"catalog GET", "GET", "/api/v1/credits"},
		{"submit", "POST", "/api/v1/flux-pro-1.1-ultra-finetuned"},
		{"poll", "GET", "/api/poll?url=" + url.QueryEscape(upstream+"/v1/get_result?id=task-1")},
	} {
		begin := time.Now()
		resp, body := do(t, tc.method, p.base+tc.path, strings.NewReader(`{"finetune_id":"ft-1"}`), http.Header{"Content-Type": {"application/json"}})
		if resp.StatusCode != http.StatusBadGateway || time.Since(begin) > 10*time.Second {
			t.Errorf("%s: %d %s after %s; want 502 well before UPSTREAM_TIMEOUT", tc.name, resp.StatusCode, body, time.Since(begin))
		}
		if tc.name == "catalog GET" && !strings.Contains(body, "MAX_HEADER_KB=64") {
			t.Errorf("%s: %s; want the detail to name MAX_HEADER_KB", tc.name, body)
		}
		// The proxy stops reading at the cap; what it did not read stays in
		// socket buffers, a few MB on loopback at most.
		if n := <-wrote; n >= 64<<20 {
			t.Errorf("%s: the upstream wrote all %d bytes of its head: the proxy read it all", tc.name, n)
		}
	}
}
