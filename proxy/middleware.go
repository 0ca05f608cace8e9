package proxy

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/cors"
)

// noteTarget records, for the access log line, the host a request was
// forwarded to. Only the host: signed links carry their signature in the
// query. The line is kept by the recorder the logging middleware put in
// front of w.
func noteTarget(w http.ResponseWriter, host string) {
	for {
		switch rw := w.(type) {
		case *recorder:
			rw.target = host
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = rw.Unwrap()
		default:
			return
		}
	}
}

// requestIDHeader carries the id logRequests gives a request. The PWA shows
// it with an error from the server side, so whoever runs the proxy can find
// the request's log lines; app/core reads the same name.
const requestIDHeader = "X-Request-Id"

// requestID is the id logRequests gave the request w answers, for the
// warnings logged on its way.
func requestID(w http.ResponseWriter) string {
	if v := w.Header()[requestIDHeader]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// logRequests gives every request an id (returned as X-Request-Id) and logs
// one line when it ends: id, method, path without query, status, bytes and
// duration. A handler that aborts its response still gets its line.
//
// Ids are a random per-process prefix plus a counter: unique across
// restarts without a trip to the kernel's random source on every request.
func (s *server) logRequests(next http.Handler) http.Handler {
	prefix := rand.Text()[:8]
	var seq atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [32]byte
		id := string(strconv.AppendUint(append(append(b[:0], prefix...), '-'), seq.Add(1), 36))
		w.Header()[requestIDHeader] = []string{id}
		rw := &recorder{ResponseWriter: w}
		defer func() {
			level := slog.LevelInfo
			p := recover()
			if p != nil {
				level = slog.LevelWarn
				defer panic(p)
			} else if _, sized := w.Header()["Content-Length"]; sized && rw.status != 0 {
				// net/http sends a buffered answer only after this
				// middleware returns; with its length known, sending it
				// now puts the same bytes on the wire and keeps the log
				// line off the client's wait.
				_ = http.NewResponseController(w).Flush()
			}
			if !s.log.Enabled(r.Context(), level) {
				return
			}
			// Handle, not LogAttrs: the logger would capture the caller's
			// stack for a source position this handler never prints.
			rec := slog.NewRecord(time.Now(), level, "request", 0)
			rec.AddAttrs(
				slog.String("id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", rw.statusCode()), slog.Int64("bytes", rw.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			)
			if rw.target != "" {
				rec.AddAttrs(slog.String("target", rw.target))
			}
			if p != nil {
				rec.AddAttrs(slog.Bool("aborted", true))
			}
			_ = s.log.Handler().Handle(r.Context(), rec)
		}()
		next.ServeHTTP(rw, r)
	})
}

// recorder counts status and bytes for the log line. Unwrap lets http.ResponseController
// (which ReverseProxy uses to flush) reach the real writer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	target string // the host forwarded to, if not the BFL API
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the server's sendfile path for static files.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// requireToken demands Authorization: Bearer <PROXY_TOKEN> when a token is
// configured. Both sides are hashed first so the comparison takes the same
// time whatever the length of the guess.
//
// Without a token, a live proxy answers this machine only: ADDR's default
// listens on every interface, and anyone on the same network could
// otherwise spend the key's credits. The simulator has none to spend.
func (s *server) requireToken(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		if s.cfg.Simulated() {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !loopback(host) {
				writeDetail(w, http.StatusForbidden,
					"this proxy answers other machines only with an access token: start it with PROXY_TOKEN set and enter the token in Settings")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fluxforge"`)
			writeDetail(w, http.StatusUnauthorized, "this proxy needs its access token: send Authorization: Bearer <PROXY_TOKEN>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guardOrigin stops other web pages from spending the user's credits
// through this proxy. A browser names the page that sent a request in
// Origin, and a page cannot forge it: only this proxy's own origin and the
// CORS_ORIGINS may call the API. Without a PROXY_TOKEN the API also answers
// only requests addressed to localhost or an IP address, because a page
// can point its own DNS name at 127.0.0.1 (DNS rebinding) and so appear to
// be same-origin.
func (s *server) guardOrigin(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range s.cfg.Origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" && !localHost(r.Host) {
			writeDetail(w, http.StatusForbidden, fmt.Sprintf(
				"requests addressed to %q are refused: without a PROXY_TOKEN the API answers only on localhost or an IP address", r.Host))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !allowed[origin] && !sameHost(origin, r.Host) {
			writeDetail(w, http.StatusForbidden, fmt.Sprintf(
				"a page from %q may not call this proxy; list that origin in CORS_ORIGINS if it is yours", origin))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names this machine by a name no
// outside DNS controls, or by an IP address.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}

// sameHost reports whether an Origin header names the host (and port) the
// request was sent to.
func sameHost(origin, hostport string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return withPort(u.Host, u.Scheme) == withPort(hostport, u.Scheme)
}

func withPort(hostport, scheme string) string {
	hostport = strings.ToLower(hostport)
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(hostport, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
}

// limit answers 503 at once past MAX_CONCURRENT requests in flight, rather
// than queueing work the client may already have given up on.
func (s *server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeDetail(w, http.StatusServiceUnavailable,
				"the proxy is handling "+strconv.Itoa(cap(s.inflight))+" requests already (MAX_CONCURRENT); retry shortly")
		}
	})
}

// cors lets a PWA hosted on another origin call the API, for exactly the
// CORS_ORIGINS listed; with none listed it adds nothing.
func (s *server) cors(next http.Handler) http.Handler {
	if s.corsPolicy == nil {
		return next
	}
	return s.corsPolicy.Handler(next)
}

func newCORS(origins []string) *cors.Cors {
	if len(origins) == 0 {
		return nil
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodHead},
		AllowedHeaders: []string{"Authorization", "Content-Type"},
		ExposedHeaders: []string{requestIDHeader, "Retry-After", notSentHeader},
		MaxAge:         600,
	})
}
