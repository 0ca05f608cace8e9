package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/fluxforge/fluxforge/build/benchcmp/measure"
)

type bigResult struct {
	size      int64
	took      time.Duration
	status    int
	detail    string
	before    measure.Mem
	peak      int64
	hwmBefore int64
	hwmAfter  int64
}

// bigUploadRSS streams a body of -big-mb through the proxy while sampling
// the proxy's resident memory: a streaming proxy's peak should barely move.
// The body is generated on the fly, so the client holds none of it either.
func bigUploadRSS(ctx context.Context, opt options) (bigResult, error) {
	ds := measure.DatasetForBody(int64(opt.bigMB*(1<<20)), opt.uploadImgs)
	var count countWriter
	if err := ds.WriteBody(&count); err != nil {
		return bigResult{}, fmt.Errorf("size the big body: %w", err)
	}
	proxy := opt.targets[1]
	before, err := measure.ReadMem(opt.proxyPID)
	if err != nil {
		return bigResult{}, err
	}
	res := bigResult{size: int64(count), before: before, hwmBefore: before.HWM}
	sampler := measure.SamplePeak(opt.proxyPID, 2*time.Millisecond)

	ctx, cancel := context.WithTimeout(ctx, opt.upTimeout)
	defer cancel()
	body := ds.Reader()
	defer body.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, proxy.base+uploadPath, body)
	if err != nil {
		return bigResult{}, fmt.Errorf("build big request: %w", err)
	}
	req.ContentLength = res.size
	req.Header.Set("Content-Type", "application/json")
	for k, v := range proxy.header {
		req.Header.Set(k, v)
	}
	c := newClient(1)
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		sampler.Stop()
		return bigResult{}, fmt.Errorf("big upload through the proxy: %w", err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	resp.Body.Close()
	res.took = time.Since(start)
	res.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		res.detail = string(answer)
	}
	if res.peak, err = sampler.Stop(); err != nil {
		return bigResult{}, err
	}
	after, err := measure.ReadMem(opt.proxyPID)
	if err != nil {
		return bigResult{}, err
	}
	res.hwmAfter = after.HWM
	return res, nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func printBig(w io.Writer, r bigResult) {
	fmt.Fprintf(w, "\nProxy memory during one %s upload (pid's VmRSS sampled every 2 ms)\n", measure.MB(r.size))
	fmt.Fprintf(w, "  status %d in %v (%.0f MB/s)\n", r.status, r.took.Round(time.Millisecond),
		float64(r.size)/(1<<20)/r.took.Seconds())
	if r.detail != "" {
		fmt.Fprintf(w, "  answer: %s\n", r.detail)
	}
	fmt.Fprintf(w, "  RSS before %s, peak during %s: growth %s; VmHWM %s -> %s\n",
		measure.MB(r.before.RSS), measure.MB(r.peak), measure.MB(r.peak-r.before.RSS),
		measure.MB(r.hwmBefore), measure.MB(r.hwmAfter))
}

// printVerdict states each target from the issue against the figures. A
// figure some of whose requests failed is no measure of the hop: failures
// are left out of the latencies, so a target whose every request failed
// would show a p50 of 0 and "meet" its target. Such a verdict reads INVALID,
// and printVerdict reports false.
func printVerdict(w io.Writer, opt options, small []smallResult, ups []uploadBench) bool {
	fmt.Fprintf(w, "\nRatios (lower is better for the proxy)\n")
	valid := true
	byKey := map[string]measure.Summary{}
	failed := map[string]int{}
	for _, r := range small {
		key := fmt.Sprintf("%s/%d", r.target, r.clients)
		byKey[key] = measure.Summarize(r.lat)
		failed[key] = r.errs
		if r.errs > 0 {
			fmt.Fprintf(w, "  WARNING: %s with %d clients had %d failed requests\n", r.target, r.clients, r.errs)
		}
	}
	for _, n := range opt.clients {
		keys := []string{fmt.Sprintf("proxy/%d", n), fmt.Sprintf("nginx/%d", n), fmt.Sprintf("direct/%d", n)}
		p, ng, d := byKey[keys[0]].P50, byKey[keys[1]].P50, byKey[keys[2]].P50
		ratio := float64(p) / float64(ng)
		v := verdict(ratio <= opt.smallTarget)
		for _, k := range keys {
			if failed[k] > 0 || byKey[k].N == 0 {
				v, valid = "INVALID: "+k+" had failed requests or none at all", false
				break
			}
		}
		fmt.Fprintf(w, "  small p50, %2d clients: proxy/nginx %.2fx (target <= %.1fx: %s), proxy/direct %.2fx\n",
			n, ratio, opt.smallTarget, v, float64(p)/float64(d))
		for _, e := range opt.extras {
			x := byKey[fmt.Sprintf("%s/%d", e.name, n)].P50
			fmt.Fprintf(w, "  small p50, %2d clients: %s/nginx %.2fx, %s/proxy %.2fx\n",
				n, e.name, float64(x)/float64(ng), e.name, float64(x)/float64(p))
		}
	}
	for _, ub := range ups {
		p50 := map[string]time.Duration{}
		for _, r := range ub.results {
			p50[r.target] = measure.Summarize(r.lat).P50
		}
		ratio := float64(p50["proxy"]) / float64(p50["nginx"])
		what := "upload (valid)"
		if ub.want != http.StatusOK {
			what = "upload transfer"
		}
		v := verdict(ratio < 1)
		if !ub.allWanted() {
			// A fast refusal would pass for a fast upload.
			v, valid = fmt.Sprintf("INVALID: not every answer was %d", ub.want), false
		}
		fmt.Fprintf(w, "  %-15s p50: proxy/nginx %.2fx (target < 1.0x: %s), proxy/direct %.2fx\n",
			what, ratio, v, float64(p50["proxy"])/float64(p50["direct"]))
	}
	return valid
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
