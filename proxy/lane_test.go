package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzLaneParsesAsNetHTTP holds lane's parser to net/http's: a head lane
// accepts must be one net/http accepts, and read the same way.
func FuzzLaneParsesAsNetHTTP(f *testing.F) {
	for _, seed := range []string{
		"GET /api/v1/credits HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
		"GET /api/v1/get_result?id=a%20b&x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /api/v1/credits HTTP/1.1\r\nhost: [::1]:8080\r\naccept: */*\r\nACCEPT: text/html\r\nConnection: close\r\n\r\n",
		"GET /api/v1/credits HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Pad: \t v \t\r\nAuthorization: Bearer t\r\n\r\n",
		"GET /api/v1/credits HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /api/v1/credits HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET /api/v1/credits HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"GET /api/v1/x HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET /api/v1/x HTTP/1.1\nHost: a\n\n",
		"GET http://evil/api/v1/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /api/v1/%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /api/v1/x HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /api/v1/x HTTP/1.1\r\nX Y: z\r\nHost: a\r\n\r\n",
		"GET /api/v1/x HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, found := headEnd(b)
		if !found {
			return
		}
		head := b[:n]
		got := parseHead(head, "192.0.2.1:1234")
		if got == nil {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("lane took a head net/http refuses (%v):\n%q", err, head)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.URL.String() != want.URL.String() ||
			got.Host != want.Host || got.Proto != want.Proto || got.Close != want.Close ||
			want.ContentLength != 0 || len(want.TransferEncoding) > 0 {
			t.Fatalf("lane and net/http read %q differently:\nlane    %s %s %s host %q close %v\nnet/http %s %s %s host %q close %v length %d te %v",
				head, got.Method, got.RequestURI, got.Proto, got.Host, got.Close,
				want.Method, want.RequestURI, want.Proto, want.Host, want.Close, want.ContentLength, want.TransferEncoding)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("lane and net/http read the headers of %q differently:\nlane     %q\nnet/http %q", head, got.Header, want.Header)
		}
	})
}

// readAnswers reads n answers off one connection, bodies included.
func readAnswers(t *testing.T, c net.Conn, n int) []*http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d of %d: %v", len(out)+1, n, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("answer %d of %d: body: %v", len(out)+1, n, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

func TestLaneAndNetHTTPShareAConnection(t *testing.T) {
	for _, mode := range []string{"simulated", "live"} {
		t.Run(mode, func(t *testing.T) {
			var p *running
			if mode == "live" {
				p = startLive(t, newFakeBFL(t), nil)
			} else {
				p = start(t, nil)
			}
			c := dialProxy(t, p)
			// One write: the API GET (lane's), then a page and another API
			// GET, which net/http serves once it has the connection.
			const host = "Host: 127.0.0.1\r\n\r\n"
			if _, err := io.WriteString(c, "GET /api/v1/credits HTTP/1.1\r\n"+host+
				"GET /healthz HTTP/1.1\r\n"+host+
				"GET /api/v1/credits HTTP/1.1\r\n"+host+
				"GET /api/v1/nope HTTP/1.1\r\nConnection: close\r\n"+host); err != nil {
				t.Fatal(err)
			}
			answers := readAnswers(t, c, 4)
			wants := []struct {
				status int
				body   string
			}{{200, `"credits"`}, {200, `"mode"`}, {200, `"credits"`}, {404, `not a BFL endpoint`}}
			ids := map[string]bool{}
			for i, resp := range answers {
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != wants[i].status || !strings.Contains(string(body), wants[i].body) {
					t.Errorf("answer %d: %d %s; want %d with %s", i+1, resp.StatusCode, body, wants[i].status, wants[i].body)
				}
				id := resp.Header.Get(requestIDHeader)
				if id == "" || ids[id] {
					t.Errorf("answer %d: request id %q, missing or repeated", i+1, id)
				}
				ids[id] = true
				if resp.Header.Get("Date") == "" || resp.ContentLength != int64(len(body)) {
					t.Errorf("answer %d: Date %q, Content-Length %d for %d bytes", i+1, resp.Header.Get("Date"), resp.ContentLength, len(body))
				}
			}
			if !answers[3].Close {
				t.Error("an answer to Connection: close did not say it closes")
			}
			closedWithin(t, c, time.Now(), 5*time.Second)
			if lines := strings.Count(p.logsAfterStop(t), `"msg":"request"`); lines != 4 {
				t.Errorf("%d request lines logged, want 4", lines)
			}
		})
	}
}

// A head whose lines end in a bare LF is one net/http reads; lane must
// hand it over at once, not wait for a CRLF CRLF that never comes.
func TestLaneHandsOverBareLineFeedsAtOnce(t *testing.T) {
	p := start(t, map[string]string{"HEADER_TIMEOUT": "10s"})
	c := dialProxy(t, p)
	begin := time.Now()
	if _, err := io.WriteString(c, "GET /api/v1/credits HTTP/1.1\nHost: 127.0.0.1\n\n"); err != nil {
		t.Fatal(err)
	}
	resp := readAnswers(t, c, 1)[0]
	if resp.StatusCode != http.StatusOK {
		t.Errorf("bare LF head: %d, want 200", resp.StatusCode)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("bare LF head answered after %s", took)
	}
}

// A head lane hands over keeps the HEADER_TIMEOUT it started with: a client
// that trickles a long head gets no second timeout from net/http.
func TestHandedOverHeadKeepsItsHeaderTimeout(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	p := start(t, map[string]string{"HEADER_TIMEOUT": timeout.String(), "READ_TIMEOUT": "1m"})
	c := dialProxy(t, p)
	begin := time.Now()
	if _, err := io.WriteString(c, "GET /api/v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: "+strings.Repeat("a", 2000)+"\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout * 2 / 3)
	// Past lane's buffer: net/http takes the head from here.
	if _, err := io.WriteString(c, "X-B: "+strings.Repeat("b", 3000)+"\r\n"); err != nil {
		t.Fatal(err)
	}
	took := closedWithin(t, c, begin, 10*time.Second)
	if took < timeout || took > timeout+timeout/2 {
		t.Errorf("a trickled head was cut after %s; want HEADER_TIMEOUT=%s from its first byte", took, timeout)
	}
}

// Stopping the proxy closes kept-alive connections at once and lets a
// request in flight finish, its answer saying the connection closes.
func TestStopClosesIdleLaneConnectionsAndFinishesBusyOnes(t *testing.T) {
	entered := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/finetune_details" {
			entered <- struct{}{}
			time.Sleep(500 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(up.Close)
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL})
	idle := dialProxy(t, p)
	if _, err := io.WriteString(idle, "GET /api/v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	readAnswers(t, idle, 1)
	busy := dialProxy(t, p)
	if _, err := io.WriteString(busy, "GET /api/v1/finetune_details?finetune_id=ft-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the upstream")
	}
	p.stop()
	closedWithin(t, idle, time.Now(), 300*time.Millisecond)
	resp := readAnswers(t, busy, 1)[0]
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("the request in flight at stop: %d, close %v, %s; want 200 closing the connection", resp.StatusCode, resp.Close, body)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		p.done <- nil // for start's cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
}

// WRITE_TIMEOUT holds on lane's answers too: a client that stops reading a
// large catalog answer loses it, and its MAX_CONCURRENT slot comes back.
func TestLaneWriteTimeoutCutsAClientThatStopsReading(t *testing.T) {
	const size = 48 << 20 // more than loopback's socket buffers hold
	sent := make(chan error, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/my_finetunes" {
			_, _ = io.WriteString(w, `{}`)
			return
		}
		// No length: lane streams it chunked as it comes.
		w.Header().Set("Content-Type", "application/json")
		chunk := bytes.Repeat([]byte(" "), 64<<10)
		var err error
		for n := 0; n < size && err == nil; n += len(chunk) {
			_, err = w.Write(chunk)
			w.(http.Flusher).Flush()
		}
		sent <- err
	}))
	t.Cleanup(up.Close)
	const timeout = 2 * time.Second
	p := start(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL, "WRITE_TIMEOUT": timeout.String(), "MAX_CONCURRENT": "1"})
	c := dialProxy(t, p)
	if _, err := io.WriteString(c, "GET /api/v1/my_finetunes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("my_finetunes: %v %v", resp, err)
	}
	// The client reads no further.
	select {
	case err := <-sent:
		if err == nil {
			t.Error("the whole answer was sent for a client that had stopped reading")
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the answer for a client that stopped reading was still flowing 15s later (WRITE_TIMEOUT=%s)", timeout)
	}
	if resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after the stalled answer: %d %s", resp.StatusCode, body)
	}
}

// FuzzAnswerHeadReadsAsNetHTTP holds the fast path's reading of an answer
// head to http.ReadResponse's, body included.
func FuzzAnswerHeadReadsAsNetHTTP(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200\r\ncontent-length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	get := &http.Request{Method: http.MethodGet}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, found := headEnd(b)
		if !found || leanAnswer(b[:n]) == nil {
			return
		}
		got, err := readAnswerHead(bufio.NewReader(bytes.NewReader(b)), get)
		if err != nil {
			t.Fatalf("lean head %q: %v", b[:n], err)
		}
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), get)
		if err != nil {
			t.Fatalf("the fast path took a head http.ReadResponse refuses (%v):\n%q", err, b[:n])
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
			got.ContentLength != want.ContentLength || got.Close != want.Close || len(want.TransferEncoding) > 0 ||
			!reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.Trailer, want.Trailer) {
			t.Fatalf("the fast path and net/http read %q differently:\nfast     %q %d %q length %d close %v %q\nnet/http %q %d %q length %d close %v %q",
				b[:n], got.Status, got.StatusCode, got.Proto, got.ContentLength, got.Close, got.Header,
				want.Status, want.StatusCode, want.Proto, want.ContentLength, want.Close, want.Header)
		}
		gb, gerr := io.ReadAll(got.Body)
		wb, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
			t.Fatalf("bodies differ after %q: fast %q (%v), net/http %q (%v)", b[:n], gb, gerr, wb, werr)
		}
	})
}

// rawAnswer sends one GET for path to addr and gives the raw answer, read
// until the server closes (the request asks it to).
func rawAnswer(t *testing.T, addr, path string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return b
}

// serveBoth serves h through lane and through net/http's own server.
func serveBoth(t *testing.T, h http.Handler) (laneAddr, netAddr string) {
	t.Helper()
	ref := httptest.NewServer(h)
	t.Cleanup(ref.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLane(&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	go func() { _ = l.serve(ln) }()
	t.Cleanup(l.close)
	return ln.Addr().String(), ref.Listener.Addr().String()
}

// laneWriter must frame every answer as net/http's writer does; each case
// is a handler doing one of the things the HTTP rules constrain.
func TestLaneWriterFramesAnswersAsNetHTTP(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MB
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"plain", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) }},
		{"header set after WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			w.Header().Set("X-Late", "1")
			_, _ = io.WriteString(w, "late")
		}},
		{"header name with CRLF", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-A\r\nSet-Cookie: injected=1\r\nX-B"] = []string{"v"}
			_, _ = io.WriteString(w, "x")
		}},
		{"value with CRLF", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-V", "a\r\nSet-Cookie: injected=1")
			_, _ = io.WriteString(w, "x")
		}},
		{"204 with a length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusNoContent)
			_, _ = io.WriteString(w, "hello")
		}},
		{"204 asking for chunks", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "chunked")
			w.WriteHeader(http.StatusNoContent)
		}},
		{"304 with type and length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusNotModified)
		}},
		{"encoded, untyped", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = io.WriteString(w, "\x1f\x8b\x08\x00")
		}},
		{"sized, untyped", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		}},
		{"over its length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "8")
			_, _ = io.WriteString(w, "123456789")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "INJECTED")
		}},
		{"length and chunked both set", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.Header().Set("Transfer-Encoding", "chunked")
			_, _ = io.WriteString(w, "hello")
		}},
		{"declared trailer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "abc")
		}},
		{"prefixed trailer", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Sum", "abc")
		}},
		{"large, unsized", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) }},
		{"large, sized", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = io.WriteString(w, big)
		}},
		{"a status Go has no text for", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(524) }},
		{"ReverseProxy, answer broken midway", (&httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "https", Host: "upstream.test"}) },
			Transport: brokenAnswer{},
			ErrorLog:  log.New(io.Discard, "", 0),
		}).ServeHTTP},
		{"aborted midway", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "6000")
			_, _ = w.Write(bytes.Repeat([]byte("a"), 3000))
			panic(http.ErrAbortHandler)
		}},
		{"panics after a whole answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
			panic("a bug after the answer was written")
		}},
		{"aborted after a 204", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
			panic(http.ErrAbortHandler)
		}},
		{"flushed, then more", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "second")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			laneAddr, netAddr := serveBoth(t, tc.h)
			got, want := rawAnswer(t, laneAddr, "/api/v1/x"), rawAnswer(t, netAddr, "/api/v1/x")
			if bytes.Contains(got, []byte("\r\nSet-Cookie")) {
				t.Errorf("lane let a header be injected:\n%q", got)
			}
			if gl, nl := firstLine(got), firstLine(want); gl != nl {
				t.Errorf("status lines differ: lane %q, net/http %q", gl, nl)
			}
			gr, nr := bufio.NewReader(bytes.NewReader(got)), bufio.NewReader(bytes.NewReader(want))
			g, gerr := http.ReadResponse(gr, nil)
			n, nerr := http.ReadResponse(nr, nil)
			if (gerr == nil) != (nerr == nil) {
				t.Fatalf("lane's answer read with %v, net/http's with %v:\nlane     %q\nnet/http %q", gerr, nerr, got, want)
			}
			if gerr != nil {
				return
			}
			gb, gberr := io.ReadAll(g.Body)
			nb, nberr := io.ReadAll(n.Body)
			g.Header.Del("Date")
			n.Header.Del("Date")
			if g.StatusCode != n.StatusCode || !reflect.DeepEqual(g.Header, n.Header) || !bytes.Equal(gb, nb) ||
				(gberr == nil) != (nberr == nil) || !reflect.DeepEqual(g.Trailer, n.Trailer) {
				t.Errorf("lane and net/http answer differently:\nlane     %d %q trailer %q body %d bytes (%v)\nnet/http %d %q trailer %q body %d bytes (%v)",
					g.StatusCode, g.Header, g.Trailer, len(gb), gberr, n.StatusCode, n.Header, n.Trailer, len(nb), nberr)
			}
			// Bytes past the answer would be read as the next one.
			if grest, nrest := readRest(gr), readRest(nr); grest != nrest {
				t.Errorf("after the answer, lane sent %q and net/http %q", grest, nrest)
			}
		})
	}
}

func readRest(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// A large answer streams through lane as it is written: lane holds at most
// laneFlushAt of it, not the whole body until the handler returns.
func TestLaneStreamsALargeAnswerAsItComes(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	const half = 1 << 20
	laneAddr, _ := serveBoth(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(2*half))
		for range half / (32 << 10) {
			_, _ = w.Write(make([]byte, 32<<10))
		}
		<-release // the rest never comes while the client waits
	}))
	c, err := net.DialTimeout("tcp", laneAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /api/v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.ReadAtLeast(c, make([]byte, half), half)
	if err != nil {
		t.Fatalf("got %d bytes of the first MB written, then %v", n, err)
	}
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(line)
}

// brokenAnswer's body breaks after its first part, as an upstream's does
// when it fails after sending the head.
type brokenAnswer struct{}

func (brokenAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, ContentLength: -1, Request: r,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(io.MultiReader(strings.NewReader(`{"items":[1,2,3`), iotest.ErrReader(errors.New("upstream failed midway")))),
	}, nil
}
