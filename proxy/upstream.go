package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// handleAPI forwards /api/v1/<name> to <upstream>/v1/<name> for catalog
// endpoints only, with the method the catalog gives and a capped body.
func (s *server) handleAPI() http.Handler {
	maxBody := s.cfg.MaxBodyMB << 20
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		ep, ok := s.endpoints[name]
		if !ok {
			writeDetail(w, http.StatusNotFound, fmt.Sprintf("Not Found: %q is not a BFL endpoint this proxy knows", name))
			return
		}
		if !allowMethods(w, r, ep.method) {
			return
		}
		if ep.method == http.MethodGet && s.fast != nil {
			s.forwardGet(w, r, ep.path)
			return
		}
		if ep.method == http.MethodPost {
			switch {
			case r.ContentLength > maxBody:
				writeDetail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
					"request body is %.1f MB, over this proxy's MAX_BODY_MB=%d", float64(r.ContentLength)/(1<<20), s.cfg.MaxBodyMB))
				return
			case r.ContentLength < 0:
				// Without a length the cap could only trip after part of the
				// body had already gone upstream.
				writeDetail(w, http.StatusLengthRequired, "request body needs a Content-Length header")
				return
			}
			body := &clientBody{ReadCloser: http.MaxBytesReader(w, r.Body, maxBody)}
			r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, body))
			r.Body = body
		}
		s.api.ServeHTTP(&keepOwnHeaders{ResponseWriter: w, own: w.Header().Clone()}, r)
	})
}

func (s *server) newAPIProxy(transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Path = "/v1/" + pr.In.PathValue("name")
			pr.Out.URL.RawPath = ""
			pr.SetURL(s.upstream)
			pr.Out.Header = s.outHeader(pr.In.Header)
			if pr.In.Method == http.MethodGet {
				pr.Out.Body, pr.Out.ContentLength = http.NoBody, 0
			}
		},
		Transport:      transport,
		BufferPool:     s.bufs,
		ModifyResponse: s.cleanResponse,
		ErrorHandler:   s.upstreamError,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// keepOwnHeaders passes no informational (1xx) answer on and gives the final
// answer back the headers this proxy set before forwarding (request id,
// CORS). ReverseProxy forwards an upstream's 1xx and then clears the header
// map: a cross-origin PWA would lose the CORS headers it needs to read the
// answer, and the PWA has no use for a 1xx.
type keepOwnHeaders struct {
	http.ResponseWriter
	own http.Header
}

func (k *keepOwnHeaders) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return
	}
	h := k.Header()
	for key, v := range k.own {
		if _, ok := h[key]; !ok {
			h[key] = v
		}
	}
	k.ResponseWriter.WriteHeader(code)
}

func (k *keepOwnHeaders) Unwrap() http.ResponseWriter { return k.ResponseWriter }

// forwardedHeaders are the client headers BFL gets to see.
var forwardedHeaders = [...]string{"Accept", "Accept-Encoding", "Accept-Language", "Content-Type", "User-Agent"}

// outHeader is all BFL sees of a client's headers: the few it needs, plus
// the key set here. Everything else (cookies, the proxy token, any x-key,
// forwarding and browser headers) stays here. An absent User-Agent stays
// absent rather than becoming Go's.
func (s *server) outHeader(in http.Header) http.Header {
	out := make(http.Header, 6)
	for _, k := range forwardedHeaders {
		if v := in.Values(k); len(v) > 0 {
			out[k] = v
		}
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = []string{""}
	}
	if s.cfg.APIKey != "" {
		out["X-Key"] = []string{s.cfg.APIKey}
	}
	return out
}

// maxErrorBody bounds how much of an error answer is read to check that it
// is JSON; BFL's are a few hundred bytes.
const maxErrorBody = 64 << 10

// cleanResponse keeps upstream cookies and CORS decisions away from the
// browser, and gives an error answer that is bodiless or not JSON (an HTML
// page from a gateway, a bare 429) BFL's error shape so the PWA can show
// it. Status and Retry-After stay as the upstream sent them.
func (s *server) cleanResponse(resp *http.Response) error {
	h := resp.Header
	h.Del("Set-Cookie")
	h.Del("Alt-Svc")
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			h.Del(k)
		}
	}
	if resp.StatusCode < 400 {
		return nil
	}
	problem := "without an error message"
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if resp.ContentLength != 0 && mt == "application/json" {
		if enc := h.Get("Content-Encoding"); enc != "" && enc != "identity" {
			return nil // compressed: passed on as it is, unread
		}
		// UPSTREAM_TIMEOUT covers the head only; a message that stalls
		// would hold the answer back until the client gave up.
		cut := time.AfterFunc(s.cfg.UpstreamTimeout, func() { _ = resp.Body.Close() })
		head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		if !cut.Stop() {
			err = fmt.Errorf("no whole message within UPSTREAM_TIMEOUT: %w", err)
		}
		switch {
		case err != nil:
			problem = "and its message broke off"
		case len(head) > maxErrorBody || json.Valid(head):
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
			return nil
		case len(head) > 0:
			problem = "with a message that is not JSON"
		}
	}
	_ = resp.Body.Close()
	body := fmt.Appendf(nil, `{"detail":%q}`, fmt.Sprintf("BFL answered %s %s", resp.Status, problem))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Content-Type", "application/json")
	h.Del("Content-Encoding")
	return nil
}

// notSentHeader marks an error answer for a request that never reached
// BFL, so the PWA can say a submit is safe to send again instead of warning
// that it may have been charged. app/core reads the same name.
const notSentHeader = "X-Not-Sent"

// upstreamError answers when no response came: the body was over the cap
// (413) or stopped arriving (408), the upstream timed out (504) or could not
// be reached (502).
func (s *server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeDetail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over this proxy's MAX_BODY_MB=%d", s.cfg.MaxBodyMB))
	case bodyTimedOut(r):
		// Checked before the context, which net/http cancels on this error
		// too. BFL got a body short of its Content-Length, so it took nothing.
		w.Header().Set(notSentHeader, "true")
		writeDetail(w, http.StatusRequestTimeout, fmt.Sprintf(
			"the request body did not arrive within this proxy's READ_TIMEOUT=%s; nothing was submitted to BFL", s.cfg.ReadTimeout))
	case r.Context().Err() != nil:
		// The client left; nobody reads this answer, the log line records it.
		w.WriteHeader(499)
	case errors.As(err, new(*connectError)):
		if !isTimeout(err) {
			s.log.Warn("upstream unreachable", "id", requestID(w), "host", s.upstreamHost, "error", err.Error())
		}
		w.Header().Set(notSentHeader, "true")
		status, detail := s.connectFailure("BFL ("+s.upstreamHost+")", err)
		writeDetail(w, status, detail+"; nothing was sent")
	case errors.Is(err, errHeadTooLarge):
		writeDetail(w, http.StatusBadGateway, fmt.Sprintf("BFL (%s) sent an answer whose head is over this proxy's MAX_HEADER_KB=%d%s",
			s.upstreamHost, s.cfg.MaxHeaderKB, mayHaveArrived(r)))
	case isTimeout(err):
		writeDetail(w, http.StatusGatewayTimeout, fmt.Sprintf("BFL (%s) did not answer within UPSTREAM_TIMEOUT=%s%s",
			s.upstreamHost, s.cfg.UpstreamTimeout, mayHaveArrived(r)))
	default:
		s.log.Warn("upstream failed", "id", requestID(w), "host", s.upstreamHost, "error", err.Error())
		writeDetail(w, http.StatusBadGateway, fmt.Sprintf("the connection to BFL (%s) failed%s", s.upstreamHost, mayHaveArrived(r)))
	}
}

// connectFailure describes a request that failed before it had a
// connection to host (a *connectError): 504 naming CONNECT_TIMEOUT, or 502
// with the reason.
func (s *server) connectFailure(host string, err error) (status int, detail string) {
	if isTimeout(err) {
		return http.StatusGatewayTimeout, fmt.Sprintf("could not connect to %s within CONNECT_TIMEOUT=%s", host, s.cfg.ConnectTimeout)
	}
	return http.StatusBadGateway, fmt.Sprintf("could not reach %s: %s", host, reason(err))
}

// clientBody notes when the client's body stopped arriving within
// READ_TIMEOUT. The round trip's error cannot say so: net/http cancels the
// request's context on that read error, so the transport reports only the
// cancellation. The note is made on the goroutine that cancelled, right
// after, well before the transport's caller can look.
type clientBody struct {
	io.ReadCloser
	timedOut atomic.Bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && isTimeout(err) {
		b.timedOut.Store(true)
	}
	return n, err
}

// clientBodyKey finds the clientBody from the request ReverseProxy hands its
// error handler, whose Body is ReverseProxy's own wrapper.
type clientBodyKey struct{}

func bodyTimedOut(r *http.Request) bool {
	b, ok := r.Context().Value(clientBodyKey{}).(*clientBody)
	return ok && b.timedOut.Load()
}

// mayHaveArrived warns, for a submit that left the proxy and got no
// answer, that BFL may have accepted it: sending it again could pay twice.
func mayHaveArrived(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	return "; the request may have reached BFL: check your tasks before sending it again"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// reason says in a few words why a connection could not be made, without
// addresses.
func reason(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "the host name does not resolve"
	case errors.Is(err, errBlockedAddr):
		return "its address is not a public one"
	case strings.Contains(err.Error(), "tls"):
		return "TLS handshake failed"
	default:
		return "connection refused or blocked"
	}
}

// bufferPool lends ReverseProxy and forwardGet their copy buffers, so
// streaming bodies does not allocate 32 KB per request.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

// Get and Put are ReverseProxy's interface; Put boxes the slice anew.
func (b *bufferPool) Get() []byte  { return *b.get() }
func (b *bufferPool) Put(p []byte) { b.put(&p) }

// get and put keep the box, for the path that runs on every catalog GET.
func (b *bufferPool) get() *[]byte  { return b.p.Get().(*[]byte) }
func (b *bufferPool) put(p *[]byte) { b.p.Put(p) }
