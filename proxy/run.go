// Package proxy is FluxForge's server: it keeps the BFL API key, forwards the
// catalog's endpoints with the key added, fetches polling and image URLs
// from allowlisted hosts, serves the PWA, and with no key runs the BFL
// simulator in-process.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
)

// Run serves until ctx is done, then lets in-flight requests finish within
// SHUTDOWN_TIMEOUT and returns nil. Configuration comes from getenv, the
// banner goes to stdout and request logs to stderr.
func Run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	s, err := newServer(cfg, logger)
	if err != nil {
		return err
	}
	defer s.close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("%w: ADDR: cannot listen on %q: %w", ErrConfig, cfg.Addr, err)
	}
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, stdout, errLog)
		if err != nil {
			_ = ln.Close()
			return err
		}
		defer stopDebug()
	}
	s.banner(stdout, ln.Addr())

	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderKB << 10,
		ErrorLog:          errLog,
	}
	conns := newLane(srv)
	defer conns.close()
	served := make(chan error, 1)
	go func() { served <- conns.serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := conns.shutdown(sctx); err != nil {
		conns.close()
		return fmt.Errorf("requests still in flight after SHUTDOWN_TIMEOUT=%s were cut: %w", cfg.ShutdownTimeout, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	return nil
}

func (s *server) banner(w io.Writer, addr net.Addr) {
	if s.cfg.Simulated() {
		fmt.Fprintln(w, "FluxForge proxy: SIMULATED mode (no BFL_API_KEY): BFL is simulated in-process; nothing is sent to BFL and nothing is charged")
	} else {
		fmt.Fprintln(w, "FluxForge proxy: live mode")
	}
	fmt.Fprintf(w, "upstream: %s\n", s.upstreamHost)
	if !s.cfg.Simulated() && strings.EqualFold(s.upstream.Hostname(), "api.bfl.ai") {
		// Finetunes live in the region that trained them; BFL documents the
		// global host as unsuitable for training and finetuned generation.
		fmt.Fprintln(w, "note: api.bfl.ai is BFL's global host; finetuning needs a regional one, such as https://api.us1.bfl.ai or https://api.eu1.bfl.ai")
	}
	if why := s.site.missing(); why != "" {
		fmt.Fprintf(w, "site: %s\n", why)
	}
	switch {
	case s.cfg.Token != "":
		fmt.Fprintln(w, "access: /api/ needs Authorization: Bearer <PROXY_TOKEN>")
	case !s.cfg.Simulated():
		fmt.Fprintln(w, "access: /api/ answers this machine only; set PROXY_TOKEN to use it from another one")
	}
	fmt.Fprintf(w, "listening on http://%s\n", addr)
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		fmt.Fprintf(w, "open http://localhost:%d in a browser\n", tcp.Port)
	}
}

// version names the build in /healthz: the VCS revision when the binary
// was built with one, else the module version.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return info.Main.Version
}
