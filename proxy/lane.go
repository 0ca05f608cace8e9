package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lane serves the proxy's connections. Keep-alive GETs of the API, the
// bulk of what a client sends while it polls, are read and answered here by
// the same handler chain net/http would run, without net/http's
// per-request machinery: a background reader goroutine per request, a
// chunked writer, four deadline updates, a parser for every shape of
// request. Any other request, and any head not in the narrow shape
// parseHead reads, hands its connection with the bytes read so far to
// net/http's Server for the rest of the connection's life, so everything
// unusual meets net/http's parser, limits and errors exactly as before.
// Two things differ from net/http for the requests lane serves, and nothing
// in the chain depends on either: their contexts carry the server but not
// the local address, and no 1xx answer is passed on.
type lane struct {
	handler http.Handler
	srv     *http.Server
	errLog  *log.Logger
	// base is the parent of every lane request's context. It carries the
	// server, as net/http's do: ReverseProxy reads it to decide whether a
	// broken answer aborts the connection.
	base    context.Context
	handoff *handoffListener
	header  time.Duration
	write   time.Duration
	idle    time.Duration
	closing atomic.Bool
	// date is the Date header of answers sent within the second it was
	// formatted in.
	date atomic.Pointer[laneDate]

	mu    sync.Mutex
	ln    net.Listener
	conns map[*laneConn]struct{}
	wg    sync.WaitGroup
}

// laneBuf is a lane connection's read buffer: a head that does not fit
// goes to net/http, which applies MAX_HEADER_KB.
const laneBuf = 4 << 10

// newLane serves through srv's handler, timeouts and error log; srv itself
// serves the connections lane hands over.
func newLane(srv *http.Server) *lane {
	l := &lane{
		handler: srv.Handler, srv: srv, errLog: srv.ErrorLog,
		base:    context.WithValue(context.Background(), http.ServerContextKey, srv),
		handoff: &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})},
		header:  srv.ReadHeaderTimeout, write: srv.WriteTimeout, idle: srv.IdleTimeout,
		conns: map[*laneConn]struct{}{},
	}
	// net/http's fallbacks for timeouts left at zero.
	if l.header <= 0 {
		l.header = srv.ReadTimeout
	}
	if l.idle <= 0 {
		l.idle = srv.ReadTimeout
	}
	if l.errLog == nil {
		l.errLog = log.Default()
	}
	return l
}

// serve accepts connections on ln until shutdown or close, and returns
// http.ErrServerClosed then.
func (l *lane) serve(ln net.Listener) error {
	l.mu.Lock()
	if l.closing.Load() {
		l.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	l.ln = ln
	l.handoff.addr = ln.Addr()
	l.mu.Unlock()
	// Serve returns once handoff is closed, which Shutdown and Close do;
	// handoff's Accept fails for no other reason.
	go func() { _ = l.srv.Serve(l.handoff) }()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if l.closing.Load() {
				return http.ErrServerClosed
			}
			// Running out of file descriptors passes; net/http waits it
			// out the same way.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.errLog.Printf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		lc := &laneConn{Conn: c, l: l, remote: c.RemoteAddr().String()}
		if !l.track(lc) {
			_ = c.Close()
			return http.ErrServerClosed
		}
		go lc.serve()
	}
}

func (l *lane) track(c *laneConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() {
		return false
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *lane) untrack(c *laneConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.wg.Done()
}

// stop closes the listener and marks every connection as closing; it
// closes those for which each reports true.
func (l *lane) stop(cut func(*laneConn) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing.Store(true)
	if l.ln != nil {
		_ = l.ln.Close()
	}
	for c := range l.conns {
		if cut(c) {
			_ = c.Conn.Close()
		}
	}
}

// shutdown stops taking requests: idle connections close at once, busy
// ones after their answer, and net/http does the same for those it holds.
// It returns when all are closed, or with ctx's error when ctx ends first.
func (l *lane) shutdown(ctx context.Context) error {
	l.stop((*laneConn).idleToClosed)
	herr := l.srv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return herr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close cuts every connection and cancels what runs on them.
func (l *lane) close() {
	l.stop(func(c *laneConn) bool {
		c.watchMu.Lock()
		if c.watchCancel != nil {
			c.watchCancel()
		}
		c.watchMu.Unlock()
		return true
	})
	_ = l.srv.Close()
}

type laneDate struct {
	sec   int64
	value []string
}

// dateHeader is the Date header for an answer sent now. Formatting it once
// a second rather than per answer saves an allocation on every request.
func (l *lane) dateHeader() []string {
	now := time.Now()
	if d := l.date.Load(); d != nil && d.sec == now.Unix() {
		return d.value
	}
	d := &laneDate{sec: now.Unix(), value: []string{now.UTC().Format(http.TimeFormat)}}
	l.date.Store(d)
	return d.value
}

// laneConn is one client connection while lane serves it.
type laneConn struct {
	net.Conn
	l      *lane
	remote string
	br     *bufio.Reader
	out    []byte
	// state is idle between requests, busy while one is handled.
	state atomic.Int32

	// A request still running after watchAfter starts a read on the
	// connection, so a client that leaves cancels what it asked for, as
	// net/http's background read does. Most answers come sooner and cost
	// no goroutine and no read.
	watchMu     sync.Mutex
	watchTimer  *time.Timer
	watchCancel context.CancelFunc
	watchStop   bool
	watching    sync.WaitGroup
}

// watchAfter is how long a request runs before lane watches for its client
// leaving.
const watchAfter = 20 * time.Millisecond

// aLongTimeAgo is a deadline that makes a pending read return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *laneConn) watch() {
	defer c.watching.Done()
	c.watchMu.Lock()
	if c.watchStop {
		c.watchMu.Unlock()
		return
	}
	cancel := c.watchCancel
	// The idle deadline still set would end the watch early.
	_ = c.SetReadDeadline(time.Time{})
	c.watchMu.Unlock()
	if _, err := c.br.Peek(1); err != nil && !isTimeout(err) {
		cancel()
	}
}

// startWatch arms the watch for a request; stopWatch ends it, and returns
// once no read is pending on the connection.
func (c *laneConn) startWatch(cancel context.CancelFunc) {
	c.watchMu.Lock()
	c.watchCancel, c.watchStop = cancel, false
	c.watchMu.Unlock()
	c.watching.Add(1)
	if c.watchTimer == nil {
		c.watchTimer = time.AfterFunc(watchAfter, c.watch)
	} else {
		c.watchTimer.Reset(watchAfter)
	}
}

func (c *laneConn) stopWatch() {
	if c.watchTimer.Stop() {
		c.watching.Done()
		return
	}
	c.watchMu.Lock()
	c.watchStop = true
	_ = c.SetReadDeadline(aLongTimeAgo)
	c.watchMu.Unlock()
	c.watching.Wait()
	_ = c.SetReadDeadline(time.Time{})
}

const (
	connIdle int32 = iota
	connBusy
	connClosed
)

func (c *laneConn) idleToClosed() bool {
	return c.state.CompareAndSwap(connIdle, connClosed)
}

func (c *laneConn) serve() {
	handed := false
	defer func() {
		if !handed {
			_ = c.Conn.Close()
		}
		c.l.untrack(c)
	}()
	c.br = bufio.NewReaderSize(c.Conn, laneBuf)
	for first := true; ; first = false {
		// A new connection has HEADER_TIMEOUT to send its first head, as
		// net/http gives it; one kept alive waits IDLE_TIMEOUT for the next.
		var headBy time.Time
		switch {
		case first && c.l.header > 0:
			headBy = time.Now().Add(c.l.header)
			_ = c.SetReadDeadline(headBy)
		case !first && c.l.idle > 0:
			_ = c.SetReadDeadline(time.Now().Add(c.l.idle))
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(connIdle, connBusy) {
			return // closed by shutdown
		}
		head, headBy, err := c.peekHead(headBy)
		if err != nil {
			return
		}
		var req *http.Request
		if head != nil {
			req = parseHead(head, c.remote)
		}
		if req == nil {
			// Still busy to shutdown: net/http closes it from here on.
			handed = c.l.handoff.give(&handedConn{Conn: c.Conn, r: c.br, headBy: headBy})
			return
		}
		_, _ = c.br.Discard(len(head))
		if !c.handle(req) {
			return
		}
		if !c.state.CompareAndSwap(connBusy, connIdle) || c.l.closing.Load() {
			return
		}
	}
}

// peekHead returns the request head, through its blank line, without
// consuming it. It returns nil when net/http should read the head instead:
// one that does not fit the buffer or ends its lines with a bare LF. A
// head that arrives in parts must be whole by headBy, which is
// HEADER_TIMEOUT from its first part unless already set; headBy comes back
// zero if the head came whole before any deadline was set.
func (c *laneConn) peekHead(headBy time.Time) ([]byte, time.Time, error) {
	for {
		b, _ := c.br.Peek(c.br.Buffered())
		if n, found := headEnd(b); found {
			return b[:n], headBy, nil
		} else if n < 0 || len(b) >= laneBuf {
			return nil, headBy, nil
		}
		if headBy.IsZero() && c.l.header > 0 {
			headBy = time.Now().Add(c.l.header)
			_ = c.SetReadDeadline(headBy)
		}
		// A head that breaks off or stalls closes the connection without
		// an answer, as net/http does.
		if _, err := c.br.Peek(len(b) + 1); err != nil {
			return nil, headBy, err
		}
	}
}

// parseHead reads a request head of the one shape lane serves: GET of a
// path under /api/v1/, HTTP/1.1, one Host, no body, no upgrade, every
// header line plain. Anything else returns nil, for net/http to parse. The
// head is copied into one string and every value points into it. The
// request gets what net/http's parse would give it; FuzzLaneParsesAsNetHTTP
// holds the two to that.
func parseHead(head []byte, remote string) *http.Request {
	hs := string(head)
	line, rest, _ := strings.Cut(hs, "\r\n")
	uri, ok := strings.CutPrefix(line, "GET ")
	if !ok {
		return nil
	}
	uri, ok = strings.CutSuffix(uri, " HTTP/1.1")
	if !ok || !strings.HasPrefix(uri, "/api/v1/") {
		return nil
	}
	for i := range len(uri) {
		if b := uri[i]; b <= ' ' || b >= 0x7f || b == '#' {
			return nil
		}
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil
	}
	h, ok := readFields(rest)
	if !ok {
		return nil
	}
	for _, k := range [...]string{"Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer", "Pragma"} {
		if _, ok := h[k]; ok {
			return nil
		}
	}
	keep, ok := keepAlive(h)
	if !ok {
		return nil
	}
	hosts := h["Host"]
	delete(h, "Host") // net/http keeps it in Request.Host only
	if len(hosts) != 1 || !validHost(hosts[0]) {
		return nil
	}
	host := hosts[0]
	return &http.Request{
		Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RemoteAddr: remote, RequestURI: uri, Close: !keep,
	}
}

func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := range len(h) {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return true
}

// handle runs the handler chain for r and writes its answer; false means
// the connection is done.
func (c *laneConn) handle(r *http.Request) (ok bool) {
	// The parent holds values only: registering every request with a
	// cancellable parent costs a map update each; close cancels each
	// connection's request instead.
	ctx, cancel := context.WithCancel(c.l.base)
	defer cancel()
	r = r.WithContext(ctx)
	if c.l.write > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(c.l.write))
	}
	w := &laneWriter{c: c, h: make(http.Header, 8), keep: !r.Close}
	c.startWatch(cancel)
	defer func() {
		// As net/http does: a panic cuts the connection, and one other than
		// ErrAbortHandler is logged with its stack.
		if p := recover(); p != nil {
			c.stopWatch()
			ok = false
			// What the handler wrote goes out before the connection closes,
			// as net/http's final flush sends it, when its framing shows the
			// cut (chunks with no last one, a body short of its length): a
			// client told where an answer broke off knows it was cut. An
			// answer that would read as whole is not sent at all.
			if w.status != 0 && !w.sent && w.err == nil && bodyAllowed(w.status) &&
				(w.length < 0 || w.wrote < w.length) {
				w.keep = false
				_ = w.sendHead(false)
			}
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.l.errLog.Printf("http: panic serving %s: %v\n%s", c.remote, p, buf)
			}
		}
	}()
	c.l.handler.ServeHTTP(w, r)
	c.stopWatch()
	if err := w.finish(); err != nil {
		return false
	}
	return w.keep
}

// laneWriter collects an answer and sends head and body in one write when
// the handler returns, at its first Flush, or once the body passes
// laneFlushAt. It frames the answer as net/http's writer would: the head
// is the header as it stood at WriteHeader; a declared Content-Length is
// kept to; bodiless statuses lose their framing headers; an answer of
// unknown length still being written goes out chunked.
type laneWriter struct {
	c      *laneConn
	h      http.Header // the handler's
	head   http.Header // h as it stood at WriteHeader
	status int
	length int64 // the declared Content-Length, or -1
	body   []byte
	wrote  int64 // body bytes taken
	sent   bool  // the head is on the wire
	chunk  bool  // the body goes out chunked
	keep   bool
	err    error
}

// laneFlushAt is how much of a body laneWriter holds before sending; past
// it the answer streams, so a large one costs no more memory here than
// through net/http.
const laneFlushAt = 4 << 10

func (w *laneWriter) Header() http.Header { return w.h }

func (w *laneWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	// 1xx answers are not passed on; the API's handlers send none.
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.head = maps.Clone(w.h)
	// The framing is lane's to choose, but a handler that asked for
	// chunks gets them, and its Content-Length is dropped, as net/http does.
	if te := w.head.Get("Transfer-Encoding"); te != "" && !strings.EqualFold(te, "identity") && bodyAllowed(code) {
		w.chunk = true
		delete(w.head, "Content-Length")
	}
	delete(w.head, "Transfer-Encoding")
	w.length = -1
	switch {
	case code == http.StatusNotModified:
		delete(w.head, "Content-Type")
		fallthrough
	case !bodyAllowed(code):
		delete(w.head, "Content-Length")
		w.length = 0
	default:
		if cl := w.head["Content-Length"]; len(cl) > 0 {
			if n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64); err == nil && n >= 0 {
				w.length = n
			} else {
				delete(w.head, "Content-Length")
			}
		}
	}
}

func (w *laneWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case !bodyAllowed(w.status):
		return 0, http.ErrBodyNotAllowed
	case w.length >= 0 && w.wrote+int64(len(p)) > w.length:
		// As with net/http, the answer is broken from here: the head goes
		// out at the end and the connection closes short of the length.
		w.err = http.ErrContentLength
		return 0, w.err
	}
	w.wrote += int64(len(p))
	if !w.sent {
		w.body = append(w.body, p...)
		if len(w.body) < laneFlushAt {
			return len(p), nil
		}
		return len(p), w.sendHead(false)
	}
	if w.chunk {
		return len(p), w.send(chunked(nil, p))
	}
	return len(p), w.send(p)
}

func chunked(b, p []byte) []byte {
	if len(p) == 0 {
		return b
	}
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

func (w *laneWriter) send(b []byte) error {
	if _, err := w.c.Conn.Write(b); err != nil {
		w.err = err
		return err
	}
	return nil
}

// FlushError sends the head and what the body holds so far.
func (w *laneWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil || w.sent {
		return w.err
	}
	return w.sendHead(false)
}

func (w *laneWriter) Flush() { _ = w.FlushError() }

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *laneWriter) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }
func (w *laneWriter) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }

// sendHead sends the head with the body so far; final means the handler
// has returned, so a body of unknown length is all there.
func (w *laneWriter) sendHead(final bool) error {
	w.sent = true
	h := w.head
	if bodyAllowed(w.status) {
		if _, typed := h["Content-Type"]; !typed && !w.chunk && len(w.body) > 0 && len(h["Content-Encoding"]) == 0 {
			h["Content-Type"] = []string{http.DetectContentType(w.body)}
		}
		if w.length < 0 {
			if final && !w.chunk && !w.hasTrailers() {
				w.length = int64(len(w.body))
				h["Content-Length"] = []string{strconv.Itoa(len(w.body))}
			} else {
				w.chunk = true
				h["Transfer-Encoding"] = []string{"chunked"}
			}
		}
	}
	if !w.keep || w.c.l.closing.Load() || strings.EqualFold(h.Get("Connection"), "close") {
		w.keep = false
		h["Connection"] = []string{"close"}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = w.c.l.dateHeader()
	}
	b := w.c.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	if text := http.StatusText(w.status); text != "" {
		b = append(b, text...)
	} else {
		// As net/http names a code it has no text for (a CDN's 520s).
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(w.status), 10)
	}
	b = append(b, "\r\n"...)
	keys := make([]string, 0, len(h))
	for k := range h {
		// As net/http does, a name that could break the head is dropped.
		if validName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b = appendHeader(b, k, v)
		}
	}
	b = append(b, "\r\n"...)
	if w.chunk {
		b = chunked(b, w.body)
	} else {
		b = append(b, w.body...)
	}
	w.body = nil
	w.c.out = b[:0]
	return w.send(b)
}

// finish completes the answer once the handler has returned.
func (w *laneWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		if err := w.sendHead(true); err != nil {
			return err
		}
	}
	switch {
	case w.err != nil:
		return w.err
	case w.chunk:
		b := append(w.c.out[:0], "0\r\n"...)
		for k, vv := range w.trailers() {
			for _, v := range vv {
				b = appendHeader(b, k, v)
			}
		}
		b = append(b, "\r\n"...)
		w.c.out = b[:0]
		return w.send(b)
	case w.length >= 0 && w.wrote < w.length:
		// Less than it declared: only a cut connection tells the client.
		return io.ErrShortWrite
	}
	return nil
}

// trailers collects what net/http would send as trailers: the values of
// names declared in a Trailer header, and of names set with
// http.TrailerPrefix, both read as the handler left them.
func (w *laneWriter) trailers() http.Header {
	t := http.Header{}
	for k, vv := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validName(name) {
			t[http.CanonicalHeaderKey(name)] = vv
		}
	}
	for _, decl := range w.head["Trailer"] {
		for name := range strings.SplitSeq(decl, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if validName(name) && !framingTrailer[name] {
				t[name] = append(t[name], w.h[name]...)
			}
		}
	}
	return t
}

// framingTrailer are names a declared trailer may not carry: they would
// change how the answer is read.
var framingTrailer = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Trailer": true}

// hasTrailers reports whether the answer has trailers to send, which need
// the chunked framing.
func (w *laneWriter) hasTrailers() bool {
	if len(w.head["Trailer"]) > 0 {
		return true
	}
	for k := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// handedConn is a connection net/http serves from where lane left it: the
// bytes lane read ahead come first.
type handedConn struct {
	net.Conn
	r *bufio.Reader
	// headBy is the HEADER_TIMEOUT deadline lane had set for the head it
	// hands over, if any. net/http's first deadline is for that head and
	// must not extend it.
	headBy time.Time
}

func (c *handedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *handedConn) SetReadDeadline(t time.Time) error {
	if by := c.headBy; !by.IsZero() {
		c.headBy = time.Time{}
		if t.IsZero() || t.After(by) {
			t = by
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// ReadFrom keeps sendfile for static files.
func (c *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http close its side gracefully after an error answer.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handoffListener is what net/http's Server accepts from: the connections
// lane hands over.
type handoffListener struct {
	addr  net.Addr
	ch    chan net.Conn
	done  chan struct{}
	close sync.Once
}

func (h *handoffListener) give(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.close.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }
