// Command loadgen drives the FluxForge proxy with many concurrent users in a
// realistic mix (generate: submit, poll, fetch the image; browse models;
// check credits) and reports throughput, latency and errors per kind of
// request, and the proxy's memory, goroutines, threads and open files
// before, during and after the load.
//
// With no -addr it starts the proxy binary itself in simulated mode on a
// free loopback port, with a large simulated credit balance and short task
// durations, and stops it with SIGTERM at the end (the clean exit is part of
// the report). With -live-sim it starts the standalone simulator and the
// proxy in live mode against it instead, so the proxy's memory is its own.
// A proxy it starts gets a pprof listener on another loopback port
// (DEBUG_ADDR), read for the goroutine count. With -addr it drives a proxy
// already running; give -pid for the process figures and -debug-addr for
// the goroutine count.
//
//	go run ./build/loadgen -clients 200 -duration 60s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"
)

type options struct {
	addr     string
	pid      int
	bin      string
	simBin   string
	token    string
	clients  int
	duration time.Duration
	think    time.Duration
	settle   time.Duration
	timeout  time.Duration
	endpoint string
	debug    string
	procs    int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "", "base URL of a running proxy, e.g. http://127.0.0.1:8080 (empty: start -proxy-bin)")
	fs.IntVar(&o.pid, "pid", 0, "pid of the running proxy given by -addr, for its process figures")
	fs.StringVar(&o.bin, "proxy-bin", "build/bin/fluxforge", "proxy binary to start in simulated mode when -addr is empty")
	fs.StringVar(&o.simBin, "live-sim", "", "bflsim binary: start it and the proxy in live mode against it, so the proxy's figures exclude the simulator")
	fs.StringVar(&o.token, "token", "", "PROXY_TOKEN of the proxy, if it has one")
	fs.IntVar(&o.clients, "clients", 200, "concurrent users")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the users keep going")
	fs.DurationVar(&o.think, "think", 250*time.Millisecond, "mean pause between a user's actions (uniform from 0 to twice this)")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "pause after the load before the 'after' figures")
	fs.DurationVar(&o.timeout, "request-timeout", 30*time.Second, "deadline of one request")
	fs.StringVar(&o.debug, "debug-addr", "", "base URL of the running proxy's pprof listener (its DEBUG_ADDR), e.g. http://127.0.0.1:6060, for its goroutine count")
	fs.IntVar(&o.procs, "proxy-gomaxprocs", 0, "GOMAXPROCS of the proxy this program starts (0: the proxy's own choice)")
	fs.StringVar(&o.endpoint, "endpoint", "flux-pro-1.1-ultra-finetuned", "generation endpoint the users submit to")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if o.clients < 1 || o.duration <= 0 {
		return options{}, errors.New("-clients must be at least 1 and -duration positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	var proc *proxyProcess
	switch {
	case o.addr != "":
	case o.simBin != "":
		var simP *proxyProcess
		if proc, simP, err = startLive(ctx, o.bin, o.simBin, o.procs); err != nil {
			return err
		}
		defer simP.kill()
		defer proc.kill()
		fmt.Fprintf(out, "started %s (pid %d) in live mode on %s, upstream %s (pid %d) on %s\n",
			o.bin, proc.pid(), proc.base, o.simBin, simP.pid(), simP.base)
	default:
		if proc, err = startSimulated(ctx, o.bin, o.procs); err != nil {
			return err
		}
		defer proc.kill()
		fmt.Fprintf(out, "started %s (pid %d) in simulated mode on %s\n", o.bin, proc.pid(), proc.base)
	}
	if proc != nil {
		o.addr, o.pid, o.debug = proc.base, proc.pid(), proc.debug
	}
	o.addr = strings.TrimSuffix(o.addr, "/")
	if err := waitHealthy(ctx, o.addr); err != nil {
		return err
	}

	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        o.clients * 2,
		MaxIdleConnsPerHost: o.clients * 2,
		IdleConnTimeout:     time.Minute,
	}}
	setup := &api{base: o.addr, token: o.token, client: client, rec: newRecorder(), timeout: o.timeout, endpoint: o.endpoint}
	model, err := readyModel(ctx, setup)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "model %s is Ready; %d users for %v, mix 50%% generate (submit, poll every 0.5 s, fetch image), 30%% browse models, 20%% credits, think 0-%v\n",
		model, o.clients, o.duration, 2*o.think)

	mon := newMonitor(o.pid, o.debug)
	before := mon.snap()
	rec := newRecorder()
	load := &api{base: o.addr, token: o.token, client: client, rec: rec, timeout: o.timeout, endpoint: o.endpoint}
	stopSampling := mon.sampleEvery(time.Second)

	lctx, cancel := context.WithTimeoutCause(ctx, o.duration, errRunOver)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range o.clients {
		u := &user{a: load, id: i, model: model, think: o.think,
			rng: rand.New(rand.NewPCG(uint64(i), 42)), ratios: []string{"1:1", "16:9", "3:4", "21:9"}}
		wg.Go(func() { u.run(lctx) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	during := stopSampling()
	client.CloseIdleConnections()
	_ = sleep(ctx, o.settle)
	after := mon.snap()

	requests, failures := rec.totals()
	fmt.Fprintf(out, "\n%d requests in %v: %.0f req/s, %d errors (429s from the simulator's cap on active tasks are counted apart)\n",
		requests, elapsed.Round(time.Millisecond), float64(requests)/elapsed.Seconds(), failures)
	rec.print(out, elapsed)
	mon.print(out, before, during, after, o.settle)

	if proc != nil {
		took, err := proc.stop(30 * time.Second)
		if err != nil {
			return fmt.Errorf("proxy did not shut down cleanly: %w", err)
		}
		fmt.Fprintf(out, "proxy shut down on SIGTERM in %v, exit status 0\n", took.Round(time.Millisecond))
	}
	if failures > 0 {
		return fmt.Errorf("%d requests failed", failures)
	}
	return nil
}
