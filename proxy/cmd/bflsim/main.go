// Command bflsim serves the BFL simulator on its own, so the proxy's live mode
// (and anything else that speaks BFL's API) can be exercised without BFL:
//
//	SIM_KEY=test-key bflsim
//	BFL_API_KEY=test-key BFL_API_URL=http://127.0.0.1:9000 fluxforge
//
// Configuration, from the environment:
//
//	SIM_KEY               required: the x-key every /v1/ request must carry
//	ADDR                  listen address (default 127.0.0.1:9000)
//	SIM_PUBLIC_URL        the URL clients reach this server at, written into
//	                      polling_url and sample links (default http://<ADDR>)
//	SIM_TRAIN_SECONDS     training time (default 60; "60" or "60s")
//	SIM_GENERATE_SECONDS  generation time (default 3)
//	SIM_SAMPLE_TTL        how long a sample link lives (default 10m)
//	SIM_MAX_ACTIVE        Pending tasks before 429 (default 24)
//	SIM_CREDITS           starting balance (default 1000)
//
// Fault markers and the price table are described in package sim.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/fluxforge/fluxforge/proxy/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bflsim:", err)
		os.Exit(1)
	}
}

type config struct {
	Sim       sim.Config
	Addr      string `env:"ADDR" envDefault:"127.0.0.1:9000"`
	PublicURL string `env:"SIM_PUBLIC_URL"`
}

// shutdownTimeout bounds how long requests in flight may take to finish.
const shutdownTimeout = 10 * time.Second

// errConfig marks configuration mistakes, reported as one line.
var errConfig = errors.New("configuration")

func loadConfig(getenv func(string) string) (config, error) {
	var cfg config
	params, err := env.GetFieldParams(&cfg)
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", errConfig, err)
	}
	vars := make(map[string]string, len(params))
	for _, p := range params {
		if v := getenv(p.Key); v != "" {
			vars[p.Key] = v
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		var agg env.AggregateError
		if errors.As(err, &agg) && len(agg.Errors) > 0 {
			err = agg.Errors[0]
		}
		var pe env.ParseError
		if errors.As(err, &pe) {
			return cfg, fmt.Errorf("%w: %s: %w", errConfig, envKey(reflect.TypeFor[config](), pe.Name), pe.Err)
		}
		return cfg, fmt.Errorf("%w: %w", errConfig, err)
	}
	if cfg.Sim.Key == "" {
		return cfg, fmt.Errorf("%w: SIM_KEY is required: set it to the key clients send as x-key "+
			"(the proxy's BFL_API_KEY)", errConfig)
	}
	if err := cfg.Sim.Check(); err != nil {
		return cfg, fmt.Errorf("%w: %w", errConfig, err)
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return cfg, fmt.Errorf("%w: SIM_PUBLIC_URL must be an origin like http://127.0.0.1:9000, got %q",
				errConfig, cfg.PublicURL)
		}
	}
	return cfg, nil
}

// envKey finds the variable behind a struct field, since caarlos0/env's
// parse errors name the Go field rather than the variable people set.
func envKey(t reflect.Type, field string) string {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if k := envKey(f.Type, field); k != "" {
				return k
			}
			continue
		}
		if f.Name == field {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			return name
		}
	}
	return ""
}

// run serves the simulator until ctx is done, then lets requests in flight
// finish. The address line it prints is what scripts and tests wait for.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ADDR: cannot listen on %q: %w", cfg.Addr, err)
	}
	public := cfg.PublicURL
	if public == "" {
		public = "http://" + ln.Addr().String()
	}
	cfg.Sim.APIBase, cfg.Sim.DeliveryBase = public, public
	s := sim.New(cfg.Sim)
	defer s.Close()

	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Minute, // training ZIPs are tens of MB
		WriteTimeout:      10 * time.Minute, // [sim:slow=...] may hold an answer
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "bflsim: simulated BFL API listening on http://%s (links use %s; x-key required)\n",
		ln.Addr(), public)

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down: %w", err)
	}
	<-served
	return nil
}
