package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/build/benchcmp/measure"
)

// smallPath is the small JSON round trip: a GET answered from memory, so the
// figure is the cost of the hop, not of the work behind it.
const smallPath = "/v1/credits"

type smallResult struct {
	target   string
	clients  int
	lat      []time.Duration
	errs     int
	firstErr string
	elapsed  time.Duration
}

// newClient gives each target its own keep-alive pool, big enough that no
// client waits for a connection.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

// benchSmall runs the small request against every target with n clients.
// The time is split into rounds and the order of targets rotates, so slow
// drift on a shared machine (another process, thermal) spreads evenly.
func benchSmall(ctx context.Context, opt options, n int) ([]smallResult, error) {
	targets := append(slices.Clone(opt.targets), opt.extras...)
	results := make([]smallResult, len(targets))
	clients := make([]*http.Client, len(targets))
	for i, t := range targets {
		results[i] = smallResult{target: t.name, clients: n}
		clients[i] = newClient(n)
		// Open the connections before timing so no round pays for dialling.
		warm := smallPhase(ctx, clients[i], t, n, 300*time.Millisecond, opt.reqTimeout)
		if warm.errs > 0 {
			return nil, fmt.Errorf("%s %s: %d of %d warm-up requests failed, first: %s",
				t.name, smallPath, warm.errs, warm.errs+len(warm.lat), warm.firstErr)
		}
	}
	phase := opt.duration / time.Duration(opt.rounds)
	for r := range opt.rounds {
		for k := range targets {
			i := (k + r) % len(targets)
			p := smallPhase(ctx, clients[i], targets[i], n, phase, opt.reqTimeout)
			res := &results[i]
			res.lat = append(res.lat, p.lat...)
			res.errs += p.errs
			res.elapsed += p.elapsed
			if res.firstErr == "" {
				res.firstErr = p.firstErr
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("small requests interrupted: %w", err)
			}
		}
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return results, nil
}

// smallPhase keeps n clients busy for d and collects every latency. A
// request still in flight at the end is let finish and dropped: cancelling
// it would close its connection, and the next phase would time a dial.
func smallPhase(ctx context.Context, c *http.Client, t target, n int, d, timeout time.Duration) smallResult {
	end := time.Now().Add(d)
	var (
		mu  sync.Mutex
		all smallResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range n {
		wg.Go(func() {
			var lat []time.Duration
			var errs int
			var firstErr string
			for time.Now().Before(end) && ctx.Err() == nil {
				took, err := smallOnce(ctx, c, t, timeout)
				switch {
				case !time.Now().Before(end) || ctx.Err() != nil:
					// Ended after the phase, or interrupted: neither a sample
					// nor a failure.
				case err != nil:
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				default:
					lat = append(lat, took)
				}
			}
			mu.Lock()
			all.lat = append(all.lat, lat...)
			all.errs += errs
			if all.firstErr == "" {
				all.firstErr = firstErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	return all
}

func smallOnce(ctx context.Context, c *http.Client, t target, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+smallPath, nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	for k, v := range t.header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", smallPath, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", smallPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d", smallPath, resp.StatusCode)
	}
	return took, nil
}

func printSmall(w io.Writer, opt options, res []smallResult) {
	fmt.Fprintf(w, "\nSmall JSON round trip: GET %s, keep-alive, %v per target and client count in %d rounds\n",
		smallPath, opt.duration, opt.rounds)
	fmt.Fprintf(w, "%-8s %7s %9s %7s %9s %9s %9s %10s\n",
		"target", "clients", "requests", "errors", "p50 ms", "p99 ms", "max ms", "req/s")
	for _, r := range res {
		s := measure.Summarize(r.lat)
		fmt.Fprintf(w, "%-8s %7d %9d %7d %9s %9s %9s %10.0f\n", r.target, r.clients, s.N, r.errs,
			measure.Ms(s.P50), measure.Ms(s.P99), measure.Ms(s.Max), float64(s.N)/r.elapsed.Seconds())
		if r.errs > 0 {
			fmt.Fprintf(w, "         first error: %s\n", r.firstErr)
		}
	}
}
