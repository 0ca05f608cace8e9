package proxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
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
