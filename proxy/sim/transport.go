package sim

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// ErrNotSimulated is returned by the Transport for a URL on a host the
// simulator does not serve, so nothing escapes to a real network.
var ErrNotSimulated = errors.New("host is not simulated")

// Transport returns a RoundTripper that serves requests for the simulator's
// API and delivery origins by calling its handler in-process. Bodies stream
// both ways through pipes: nothing is buffered whole, so a 27 MB upload
// costs no 27 MB copy. Cancelling the request's context aborts the exchange
// on both sides; the handler sees the same context.
func (s *Sim) Transport() http.RoundTripper {
	return newTransport(s, s.cfg.APIBase, s.cfg.DeliveryBase)
}

type transport struct {
	handler http.Handler
	origins map[string]bool // "scheme://host[:port]", lower case
}

func newTransport(h http.Handler, bases ...string) *transport {
	t := &transport{handler: h, origins: make(map[string]bool)}
	for _, b := range bases {
		if u, err := url.Parse(b); err == nil {
			t.origins[origin(u)] = true
		}
	}
	return t
}

func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeReqBody := sync.OnceFunc(func() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
	})
	if !t.origins[origin(req.URL)] {
		closeReqBody()
		return nil, fmt.Errorf("simulator transport: %s://%s: %w", req.URL.Scheme, req.URL.Host, ErrNotSimulated)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeReqBody()
		return nil, fmt.Errorf("simulator transport: %w", err)
	}

	sreq := req.Clone(ctx)
	sreq.RequestURI = req.URL.RequestURI()
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	sreq.RemoteAddr = "in-process"
	sreq.Proto, sreq.ProtoMajor, sreq.ProtoMinor = "HTTP/1.1", 1, 1
	sreq.Body = http.NoBody
	var reqPipe *io.PipeReader
	if req.Body != nil && req.Body != http.NoBody {
		pr, pw := io.Pipe()
		reqPipe = pr
		sreq.Body = pr
		go func() {
			_, err := io.Copy(pw, req.Body)
			closeReqBody()
			pw.CloseWithError(err) // nil: the handler reads EOF
		}()
	}

	rw := newPipeResponse()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				rw.fail(fmt.Errorf("simulator handler panicked: %v", p))
			}
			rw.finish()
			if reqPipe != nil {
				// The handler may stop before the end of the body: unblock the copier.
				reqPipe.Close()
			}
		}()
		t.handler.ServeHTTP(rw, sreq)
	}()

	abort := func(err error) {
		// Closing the write half fails the handler's writes and makes the
		// client's reads return err (closing the read half would hide err).
		rw.writer.CloseWithError(err)
		if reqPipe != nil {
			reqPipe.CloseWithError(err)
		}
		closeReqBody()
	}
	select {
	case <-rw.ready:
	case <-ctx.Done():
		abort(ctx.Err())
		return nil, fmt.Errorf("simulator transport: %w", ctx.Err())
	}
	if rw.err != nil {
		return nil, rw.err
	}
	body := &pipeBody{PipeReader: rw.reader, closed: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
			abort(ctx.Err())
		case <-rw.done:
		case <-body.closed:
		}
	}()
	contentLength := int64(-1)
	if n, err := strconv.ParseInt(rw.sent.Get("Content-Length"), 10, 64); err == nil {
		contentLength = n
	}
	return &http.Response{
		Status:        strconv.Itoa(rw.status) + " " + http.StatusText(rw.status),
		StatusCode:    rw.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.sent,
		Body:          body,
		ContentLength: contentLength,
		Request:       req,
	}, nil
}

// pipeResponse is the handler's ResponseWriter. Each Write blocks until the
// client has read it, which is what makes the response stream.
type pipeResponse struct {
	header http.Header
	reader *io.PipeReader
	writer *io.PipeWriter

	// Set by the handler goroutine before ready is closed; read after.
	wroteHeader bool
	status      int
	sent        http.Header
	err         error
	ready       chan struct{}
	done        chan struct{}
}

func newPipeResponse() *pipeResponse {
	pr, pw := io.Pipe()
	return &pipeResponse{header: make(http.Header), reader: pr, writer: pw,
		ready: make(chan struct{}), done: make(chan struct{})}
}

func (p *pipeResponse) Header() http.Header { return p.header }

func (p *pipeResponse) WriteHeader(code int) {
	if p.wroteHeader || (code >= 100 && code < 200) {
		return // informational answers are not the response
	}
	p.wroteHeader, p.status, p.sent = true, code, p.header.Clone()
	close(p.ready)
}

func (p *pipeResponse) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		if p.header.Get("Content-Type") == "" {
			p.header.Set("Content-Type", http.DetectContentType(b))
		}
		p.WriteHeader(http.StatusOK)
	}
	return p.writer.Write(b)
}

// Flush lets handlers that flush work; writes already reach the client unbuffered.
func (p *pipeResponse) Flush() {}

// fail reports a handler failure: as the RoundTrip error when no header was
// sent yet, else as the error the client's next body read returns.
func (p *pipeResponse) fail(err error) {
	if !p.wroteHeader {
		p.wroteHeader, p.err = true, err
		close(p.ready)
	}
	p.writer.CloseWithError(err)
}

func (p *pipeResponse) finish() {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	p.writer.Close()
	close(p.done)
}

// pipeBody is the client's response body; closing it early makes the
// handler's pending and later writes fail, which ends the handler.
type pipeBody struct {
	*io.PipeReader
	once   sync.Once
	closed chan struct{}
}

func (b *pipeBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.PipeReader.Close()
}
