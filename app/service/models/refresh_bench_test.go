//go:build !js

package models

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/core"
)

// BenchmarkRefresh100 lists 100 finetunes from an HTTP server that takes 100 ms
// per request (my_finetunes, then details and status of each), with the
// bounded-concurrent refresh against the same refresh one request at a time,
// both measured in the same run. Run it with
//
//	go test -run '^$' -bench Refresh100 -benchtime 1x ./app/service/models
func BenchmarkRefresh100(b *testing.B) {
	acc := newAccount(100 * time.Millisecond)
	for i := range 100 {
		acc.add(fmt.Sprintf("ft-%03d", i), fmt.Sprintf("Model %03d", i), "Ready")
	}
	srv := httptest.NewServer(acc)
	defer srv.Close()
	api := core.NewAPI(core.APIOptions{BaseURL: srv.URL, HTTP: srv.Client(), Timeout: 10 * time.Second})
	refresh := func(concurrency int) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		svc := New(api, core.NewMemoryStorage(), concurrency) // empty cache: every model is fetched
		start := time.Now()
		list, err := svc.Refresh(ctx)
		if err != nil || len(list) != 100 {
			b.Fatalf("refresh: %d models, %v", len(list), err)
		}
		return time.Since(start)
	}
	var seq, bounded time.Duration
	for b.Loop() {
		seq += refresh(1)
		bounded += refresh(DefaultConcurrency)
	}
	n := float64(b.N)
	b.ReportMetric(seq.Seconds()/n, "s-sequential")
	b.ReportMetric(bounded.Seconds()/n, "s-bounded")
	b.ReportMetric(seq.Seconds()/bounded.Seconds(), "x-faster")
}
