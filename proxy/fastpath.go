package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// idleFor is how long a pooled connection may sit unused. Servers close idle
// connections on their own schedule (uvicorn after 5 s); a short limit
// keeps most reuses on connections the upstream still holds open.
const idleFor = 4 * time.Second

// fastPath sends the catalog GETs to the one upstream over HTTP/1.1 on the
// calling goroutine. net/http's Transport hands every request to a writer
// and a reader goroutine per connection; on loopback those two wake-ups are
// a large share of a small request's latency. Submits (POST) keep using
// net/http's Transport: one must never be sent twice, and this pool's check
// for a connection the upstream closed while idle can still lose a race
// with the upstream's close, after which only a GET may be sent again.
type fastPath struct {
	addr   string // host:port to dial
	host   string // the Host header
	key    []byte // the "X-Key: ..." header line, empty in simulated mode
	tls    *tls.Config
	dialer *net.Dialer
	header time.Duration // response header timeout
	head   int           // response head size cap, bytes
	// getReq is the request http.ReadResponse reads every answer against:
	// it only looks at the method.
	getReq *http.Request

	mu      sync.Mutex
	idle    []*upConn
	max     int
	idleFor time.Duration // idleFor, shorter in tests
	// sweeper closes connections idle past idleFor while the pool holds
	// any, so ones the upstream has closed do not sit in CLOSE_WAIT until
	// the next request; nil when not armed.
	sweeper *time.Timer
	closed  bool
}

type upConn struct {
	net.Conn
	head  headCap // br reads through it
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // when it went idle
}

// errHeadTooLarge is an answer head over MAX_HEADER_KB.
var errHeadTooLarge = errors.New("the answer's head is over MAX_HEADER_KB")

// headCap limits what a connection may read while an answer head is
// parsed: textproto keeps reading header lines for as long as they come,
// so an upstream that never ends its head would otherwise be read into
// memory until UPSTREAM_TIMEOUT.
type headCap struct {
	r    io.Reader
	left int // what the head may still read; negative between heads
}

func (h *headCap) Read(p []byte) (int, error) {
	if h.left < 0 {
		return h.r.Read(p)
	}
	if h.left == 0 {
		return 0, errHeadTooLarge
	}
	n, err := h.r.Read(p[:min(len(p), h.left)])
	h.left -= n
	return n, err
}

func newFastPath(upstream *url.URL, key string, headerTimeout, connectTimeout time.Duration, maxHead int) *fastPath {
	port := upstream.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[upstream.Scheme]
	}
	f := &fastPath{
		addr:    net.JoinHostPort(upstream.Hostname(), port),
		host:    upstream.Host,
		dialer:  &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		header:  headerTimeout,
		head:    maxHead,
		getReq:  &http.Request{Method: http.MethodGet},
		max:     256,
		idleFor: idleFor,
	}
	if key != "" {
		f.key = appendHeader(nil, "X-Key", key)
	}
	if upstream.Scheme == "https" {
		f.tls = &tls.Config{
			ServerName: upstream.Hostname(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12,
			ClientSessionCache: tls.NewLRUClientSessionCache(64),
		}
	}
	return f
}

// Get sends GET uri (an escaped path and query) with the forwarded subset
// of the client's headers, and the key. A reused connection that fails
// before any of the answer arrives (the upstream closed it meanwhile) is
// retried once on a new connection: when the upstream restarts or sweeps
// its idle connections, the others in the pool are as dead as the first.
func (f *fastPath) Get(ctx context.Context, uri string, in http.Header) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := f.conn(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		resp, err := f.exchange(ctx, c, uri, in)
		if err == nil {
			return resp, nil
		}
		_ = c.Close()
		// Only a connection that failed before any answer came is retried:
		// an answer, however broken, is the upstream's word on this request.
		answered := c.head.left >= 0 && c.head.left < f.head
		if !reused || attempt > 0 || answered || ctx.Err() != nil || isTimeout(err) {
			return nil, err
		}
	}
}

// writeGet writes the request head straight into the connection's buffer:
// what http.Request.Write would send for it, without building a Request
// and a Header map per call. The request URI and header values come from
// net/http's parse of the client's request, which refuses control
// characters in the URI and splits headers at line ends; appendHeader
// still turns any CR or LF into a space, as net/http does.
func (f *fastPath) writeGet(bw *bufio.Writer, uri string, in http.Header) error {
	b := bw.AvailableBuffer()
	b = append(b, "GET "...)
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, f.host...)
	b = append(b, "\r\n"...)
	for _, k := range forwardedHeaders {
		for _, v := range in[k] {
			b = appendHeader(b, k, v)
		}
	}
	b = append(b, f.key...)
	b = append(b, "\r\n"...)
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}

func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	for i := range len(v) {
		if c := v[i]; c == '\r' || c == '\n' {
			b = append(b, ' ')
		} else {
			b = append(b, c)
		}
	}
	return append(b, "\r\n"...)
}

// conn takes the newest pooled connection with nothing unasked to read, or
// dials one when there is none or fresh is set.
func (f *fastPath) conn(ctx context.Context, fresh bool) (*upConn, bool, error) {
	for !fresh {
		f.mu.Lock()
		stale := f.expiredLocked()
		var c *upConn
		if n := len(f.idle); n > 0 {
			c, f.idle = f.idle[n-1], f.idle[:n-1]
		}
		f.mu.Unlock()
		closeAll(stale)
		if c == nil {
			break
		}
		if !c.stray() {
			return c, true, nil
		}
		_ = c.Close()
	}
	nc, err := f.dialer.DialContext(ctx, "tcp", f.addr)
	if err != nil {
		return nil, false, &connectError{err}
	}
	if f.tls != nil {
		tc := tls.Client(nc, f.tls)
		hctx, cancel := context.WithTimeout(ctx, f.dialer.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, false, &connectError{fmt.Errorf("tls handshake with %s: %w", f.addr, err)}
		}
		nc = tc
	}
	uc := &upConn{Conn: nc, head: headCap{r: nc, left: -1}, bw: bufio.NewWriterSize(nc, 16<<10)}
	uc.br = bufio.NewReaderSize(&uc.head, 16<<10)
	return uc, false, nil
}

// stray reports whether an idle connection has anything to read (see
// hasStrayBytes). Over TLS, a record that came in with the last answer sits
// in tls.Conn's buffers, out of the socket's sight: a read that cannot wait
// finds it there, and otherwise times out without harm to the connection.
func (c *upConn) stray() bool {
	if _, ok := c.Conn.(*tls.Conn); ok {
		_ = c.SetReadDeadline(aLongTimeAgo)
		_, err := c.br.Peek(1)
		_ = c.SetReadDeadline(time.Time{})
		if !isTimeout(err) {
			return true // a record, or a broken connection
		}
	}
	return hasStrayBytes(c.Conn)
}

// expiredLocked takes the connections idle past f.idleFor out of the pool;
// the oldest sit at the front.
func (f *fastPath) expiredLocked() []*upConn {
	cut := 0
	for cut < len(f.idle) && time.Since(f.idle[cut].since) > f.idleFor {
		cut++
	}
	stale := f.idle[:cut:cut]
	f.idle = f.idle[cut:]
	return stale
}

func closeAll(conns []*upConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

func (f *fastPath) put(c *upConn) {
	c.since = time.Now()
	f.mu.Lock()
	// Bytes past the answer's end mean the upstream broke the framing: the
	// next answer read there would not be the next request's.
	if !f.closed && len(f.idle) < f.max && c.br.Buffered() == 0 {
		f.idle = append(f.idle, c)
		c = nil
		if f.sweeper == nil {
			f.sweeper = time.AfterFunc(f.idleFor, f.sweep)
		}
	}
	f.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

func (f *fastPath) sweep() {
	f.mu.Lock()
	stale := f.expiredLocked()
	if len(f.idle) > 0 && !f.closed {
		f.sweeper.Reset(f.idleFor)
	} else {
		f.sweeper = nil
	}
	f.mu.Unlock()
	closeAll(stale)
}

// close closes the pooled connections and pools no more; requests in
// flight finish on their own connections.
func (f *fastPath) close() {
	f.mu.Lock()
	f.closed = true
	idle := f.idle
	f.idle = nil
	if f.sweeper != nil {
		f.sweeper.Stop()
		f.sweeper = nil
	}
	f.mu.Unlock()
	closeAll(idle)
}

// exchange writes the request and reads the response head; the body is
// read by the caller through the returned Body, which gives the connection
// back to the pool once read to the end.
func (f *fastPath) exchange(ctx context.Context, c *upConn, uri string, in http.Header) (*http.Response, error) {
	// The header deadline is set before the cancel hook exists: set after,
	// it could overwrite the hook's deadline in the past and leave a
	// cancelled request waiting for the upstream.
	var headBy time.Time
	if f.header > 0 {
		headBy = time.Now().Add(f.header)
		_ = c.SetReadDeadline(headBy)
	}
	// Cancelling the request unblocks any read or write on the connection.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	if err := f.writeGet(c.bw, uri, in); err != nil {
		stop()
		return nil, ctxErr(ctx, err)
	}
	var resp *http.Response
	c.head.left = f.head
	for {
		r, err := readAnswerHead(c.br, f.getReq)
		if err != nil {
			stop()
			// A head cut off mid-line, by the cap or the deadline, surfaces
			// as a malformed response: bufio.Reader.ReadLine drops the read
			// error when it holds part of a line.
			if c.head.left == 0 && !errors.Is(err, errHeadTooLarge) {
				err = fmt.Errorf("%w (%w)", errHeadTooLarge, err)
			}
			if !headBy.IsZero() && !time.Now().Before(headBy) && !isTimeout(err) {
				err = fmt.Errorf("%w: no complete response head within %s (%w)", os.ErrDeadlineExceeded, f.header, err)
			}
			return nil, ctxErr(ctx, err)
		}
		if r.StatusCode >= 200 || r.StatusCode == http.StatusSwitchingProtocols {
			resp = r
			break
		}
		if r.StatusCode < 100 {
			stop()
			return nil, fmt.Errorf("the upstream answered status %d, which HTTP does not have", r.StatusCode)
		}
		// 1xx informational answers precede the real one.
	}
	c.head.left = -1
	// A body already read in whole with the head (most JSON answers) needs
	// no more reads, and the next exchange on this connection sets its own
	// deadline: clearing it would be one more timer update per request.
	if !headBy.IsZero() && (resp.ContentLength < 0 || int64(c.br.Buffered()) < resp.ContentLength) {
		_ = c.SetReadDeadline(time.Time{})
	}
	// The context is done before its hook runs, so if the hook already
	// fired, this sees it and puts the past deadline back.
	if ctx.Err() != nil {
		_ = c.SetDeadline(aLongTimeAgo)
	}
	reusable := !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	resp.Body = &upBody{ReadCloser: resp.Body, c: c, f: f, stop: stop, reusable: reusable}
	return resp, nil
}

// ctxErr prefers the context's error, so a cancelled or timed-out request
// is reported as such rather than as an I/O deadline.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

// upBody returns the connection to the pool after a clean EOF and closes
// it otherwise.
type upBody struct {
	io.ReadCloser
	c        *upConn
	f        *fastPath
	stop     func() bool
	reusable bool
	// done is atomic: cleanResponse may close the body from a timer while
	// a read reaches its end.
	done atomic.Bool
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.finish(true)
	}
	return n, err
}

func (b *upBody) Close() error {
	b.finish(false)
	return nil
}

func (b *upBody) finish(eof bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	cancelled := !b.stop()
	if eof && b.reusable && !cancelled {
		b.f.put(b.c)
		return
	}
	_ = b.c.Close()
}

// forwardGet answers a catalog GET without ReverseProxy: the request its
// Rewrite would build goes out through the fast path, and the answer,
// cleaned as ReverseProxy would clean it, is copied straight to the client.
// ReverseProxy's clone of the incoming request and its header, trailer and
// flush bookkeeping cost a small JSON answer more than the hop itself.
func (s *server) forwardGet(w http.ResponseWriter, r *http.Request, uri string) {
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	resp, err := s.fast.Get(r.Context(), uri, r.Header)
	if err != nil {
		s.upstreamError(w, r, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.upstreamError(w, r, errors.New("the upstream switched protocols unasked"))
		return
	}
	_ = s.cleanResponse(resp)
	dropHopByHop(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		// The response is ours alone: its values can move, not copy.
		if have, ok := h[k]; ok {
			vv = append(have, vv...)
		}
		h[k] = vv
	}
	w.WriteHeader(resp.StatusCode)
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	// An answer of unknown length may be a stream: each part goes out as
	// it arrives.
	if err := s.copyBody(w, r, resp.Body, resp.ContentLength < 0, *buf); err != nil {
		// Headers are gone; only a cut connection tells the client the
		// answer is incomplete.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

func (s *server) copyBody(w http.ResponseWriter, r *http.Request, body io.Reader, flush bool, buf []byte) error {
	rc := http.NewResponseController(w)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("writing the answer: %w", err)
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return fmt.Errorf("flushing the answer: %w", err)
				}
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			// A client that left cancels the request, whose hook cuts the
			// upstream read with a past deadline: that is not the upstream's
			// doing.
			if r.Context().Err() == nil {
				s.log.Warn("upstream answer broke off", "id", requestID(w), "host", s.upstreamHost, "error", rerr.Error())
			}
			return fmt.Errorf("reading the answer: %w", rerr)
		}
	}
}

// dropHopByHop removes the headers that describe the upstream connection
// rather than the answer, and any the upstream's Connection header names.
func dropHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		delete(h, k)
	}
}
