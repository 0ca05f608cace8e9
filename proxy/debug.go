package proxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// maxDebugProfile bounds a CPU profile or trace taken on DEBUG_ADDR.
const maxDebugProfile = 2 * time.Minute

// guardDebug answers only requests addressed to localhost or an IP: the
// listener is on loopback, but a web page can point its own DNS name at
// 127.0.0.1 (DNS rebinding) and read what it serves. It also refuses a
// profile or trace longer than maxDebugProfile, which pprof would run for
// as long as asked, holding the process's one profiler.
func guardDebug(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			http.Error(w, "the debug listener answers only requests addressed to localhost or an IP", http.StatusForbidden)
			return
		}
		if s := r.URL.Query().Get("seconds"); s != "" {
			if v, err := strconv.ParseFloat(s, 64); err == nil && v > maxDebugProfile.Seconds() {
				http.Error(w, fmt.Sprintf("seconds: at most %.0f here", maxDebugProfile.Seconds()), http.StatusBadRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveDebug serves net/http/pprof on DEBUG_ADDR, a listener of its own:
// the public mux never carries it. The returned stop closes it.
func serveDebug(addr string, stdout io.Writer, errLog *log.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: DEBUG_ADDR: cannot listen on %q: %w", ErrConfig, addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: guardDebug(mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	fmt.Fprintf(stdout, "debug: pprof on http://%s/debug/pprof/\n", ln.Addr())
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errLog.Printf("debug listener on %s: %v", ln.Addr(), err)
		}
	}()
	return func() {
		_ = srv.Close()
		<-served
	}, nil
}
