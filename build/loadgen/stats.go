package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/build/benchcmp/measure"
)

// The kinds of request a user makes, in report order.
const (
	kindSubmit  = "submit"
	kindPoll    = "poll"
	kindImage   = "image"
	kindList    = "my_finetunes"
	kindDetails = "finetune_details"
	kindCredits = "credits"
)

var kinds = []string{kindSubmit, kindPoll, kindImage, kindList, kindDetails, kindCredits}

type kindStats struct {
	lat     []time.Duration
	limited int            // 429 from the simulator: intended back-pressure, not a failure
	errors  map[string]int // reason -> count
}

// recorder collects every request's outcome from all clients.
type recorder struct {
	mu    sync.Mutex
	kinds map[string]*kindStats
}

func newRecorder() *recorder {
	r := &recorder{kinds: map[string]*kindStats{}}
	for _, k := range kinds {
		r.kinds[k] = &kindStats{errors: map[string]int{}}
	}
	return r
}

func (r *recorder) ok(kind string, d time.Duration) {
	r.mu.Lock()
	r.kinds[kind].lat = append(r.kinds[kind].lat, d)
	r.mu.Unlock()
}

func (r *recorder) limited(kind string) {
	r.mu.Lock()
	r.kinds[kind].limited++
	r.mu.Unlock()
}

func (r *recorder) fail(kind, reason string) {
	r.mu.Lock()
	r.kinds[kind].errors[reason]++
	r.mu.Unlock()
}

// totals returns all requests answered, and the failures among them.
func (r *recorder) totals() (requests, failures int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kinds {
		requests += len(k.lat) + k.limited
		for _, n := range k.errors {
			requests += n
			failures += n
		}
	}
	return requests, failures
}

func (r *recorder) print(w io.Writer, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "%-17s %9s %8s %9s %9s %9s %9s %7s\n",
		"kind", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "429s", "errors")
	for _, name := range kinds {
		k := r.kinds[name]
		s := measure.Summarize(k.lat)
		var errs int
		for _, n := range k.errors {
			errs += n
		}
		n := s.N + k.limited + errs
		fmt.Fprintf(w, "%-17s %9d %8.1f %9s %9s %9s %9d %7d\n", name, n, float64(n)/elapsed.Seconds(),
			measure.Ms(s.P50), measure.Ms(s.P99), measure.Ms(s.Max), k.limited, errs)
	}
	for _, name := range kinds {
		k := r.kinds[name]
		for _, reason := range slices.Sorted(maps.Keys(k.errors)) {
			fmt.Fprintf(w, "  error %-16s %6d x %s\n", name, k.errors[reason], reason)
		}
	}
}

// reasonOf turns a transport error into a short, countable label.
func reasonOf(err error) string {
	s := err.Error()
	for _, known := range []string{"connection reset", "connection refused", "EOF", "timeout", "deadline exceeded", "broken pipe"} {
		if strings.Contains(s, known) {
			return "transport: " + known
		}
	}
	return "transport: " + s
}
