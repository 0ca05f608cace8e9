package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/build/benchcmp/measure"
)

const uploadPath = "/v1/finetune"

type uploadResult struct {
	target   string
	lat      []time.Duration
	statuses map[int]int
	detail   string // the body of the first answer with another status than wanted, cut short
}

// uploadBench is one upload measurement: the same body to every target.
type uploadBench struct {
	title   string
	size    int
	want    int // the status every answer should have
	results []uploadResult
}

// uploadBodies builds the two uploads: a valid finetune, whose time includes
// the simulator decoding and checking 20 MB of ZIP, and the same bytes with
// the first one spoiled, which the simulator refuses with 422 as soon as it
// has read them, so the time is the transfer through each hop alone.
func uploadBodies(opt options) (valid, transfer uploadBench, body, spoiled []byte, err error) {
	ds := measure.DatasetForBody(int64(opt.uploadMB*(1<<20)), opt.uploadImgs)
	body, err = ds.Body()
	if err != nil {
		return valid, transfer, nil, nil, fmt.Errorf("build upload body: %w", err)
	}
	spoiled = slices.Clone(body)
	spoiled[0] = 'x'
	mb := float64(len(body)) / (1 << 20)
	valid = uploadBench{size: len(body), want: http.StatusOK, title: fmt.Sprintf(
		"Finetune upload: POST %s, %.1f MB JSON body (base64 ZIP of %d PNGs %dx%d), answered 200 after the BFL server checks the ZIP",
		uploadPath, mb, ds.Images, ds.Side, ds.Side)}
	transfer = uploadBench{size: len(body), want: http.StatusUnprocessableEntity, title: fmt.Sprintf(
		"Upload transfer: the same %.1f MB with its first byte spoiled, answered 422 as soon as the BFL server has read it all",
		mb)}
	return valid, transfer, body, spoiled, nil
}

// benchUpload posts body to each target, warm-up first, then round-robin so
// each target sees the same conditions.
func benchUpload(ctx context.Context, opt options, ub uploadBench, body []byte) (uploadBench, error) {
	ub.results = make([]uploadResult, len(opt.targets))
	clients := make([]*http.Client, len(opt.targets))
	for i, t := range opt.targets {
		ub.results[i] = uploadResult{target: t.name, statuses: map[int]int{}}
		clients[i] = newClient(1)
		if _, _, _, err := uploadOnce(ctx, clients[i], t, body, opt.upTimeout); err != nil {
			return uploadBench{}, fmt.Errorf("%s warm-up upload: %w", t.name, err)
		}
	}
	// The order rotates each round, as for the small request: the BFL
	// server pays for one 27 MB parse in the next (its collector), so a
	// fixed order would always hand that cost to the same target.
	for r := range opt.uploads {
		for k := range opt.targets {
			i := (k + r) % len(opt.targets)
			t := opt.targets[i]
			took, status, detail, err := uploadOnce(ctx, clients[i], t, body, opt.upTimeout)
			if err != nil {
				return uploadBench{}, fmt.Errorf("%s upload: %w", t.name, err)
			}
			r := &ub.results[i]
			r.lat = append(r.lat, took)
			r.statuses[status]++
			if status != ub.want && r.detail == "" {
				r.detail = detail
			}
		}
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return ub, nil
}

// allWanted reports whether every timed upload got the wanted status.
func (ub uploadBench) allWanted() bool {
	for _, r := range ub.results {
		if r.statuses[ub.want] != len(r.lat) {
			return false
		}
	}
	return true
}

// uploadOnce times one POST from the first byte sent to the last byte of the
// answer read.
func uploadOnce(ctx context.Context, c *http.Client, t target, body []byte, timeout time.Duration) (time.Duration, int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+uploadPath, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range t.header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, "", fmt.Errorf("POST %s: %w", uploadPath, err)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, 0, "", fmt.Errorf("read answer of %s: %w", uploadPath, err)
	}
	return took, resp.StatusCode, strings.TrimSpace(string(answer[:min(len(answer), 300)])), nil
}

func printUpload(w io.Writer, opt options, ub uploadBench) {
	mb := float64(ub.size) / (1 << 20)
	fmt.Fprintf(w, "\n%s; %d timed per target\n", ub.title, opt.uploads)
	fmt.Fprintf(w, "%-8s %9s %9s %9s %10s  %s\n", "target", "p50 ms", "min ms", "max ms", "MB/s p50", "statuses")
	for _, r := range ub.results {
		s := measure.Summarize(r.lat)
		fmt.Fprintf(w, "%-8s %9s %9s %9s %10.1f  %s\n", r.target, measure.Ms(s.P50), measure.Ms(s.Min),
			measure.Ms(s.Max), mb/s.P50.Seconds(), statusList(r.statuses))
		if r.detail != "" {
			fmt.Fprintf(w, "         first unexpected answer: %s\n", r.detail)
		}
	}
}

func statusList(m map[int]int) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d x%d", code, m[code]))
	}
	return strings.Join(parts, " ")
}
