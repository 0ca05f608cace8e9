package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkSmallJSON measures a small GET round trip straight to a local
// upstream and through the proxy in the same run, alternating the two so
// both see the same machine noise, and reports their p50s and the ratio.
func BenchmarkSmallJSON(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"credits": 1234.5}`)
	}))
	b.Cleanup(up.Close)
	p := startWith(b, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL}, io.Discard)
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(url string) time.Duration {
		t0 := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
		return time.Since(t0)
	}
	var direct, proxied []time.Duration
	for b.Loop() {
		direct = append(direct, get(up.URL+"/v1/credits"))
		proxied = append(proxied, get(p.base+"/api/v1/credits"))
	}
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2]) / 1e3
	}
	pd, pp := p50(direct), p50(proxied)
	b.ReportMetric(pd, "direct-p50-µs")
	b.ReportMetric(pp, "proxy-p50-µs")
	b.ReportMetric(pp/pd, "proxy/direct")
}
