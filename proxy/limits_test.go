package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOverCapBodyNeverReachesUpstream(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"MAX_BODY_MB": "1"})

	body := bytes.Repeat([]byte("a"), 1<<20+1)
	resp, text := do(t, "POST", p.base+"/api/v1/flux-pro-1.1-ultra-finetuned", bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(text, "MAX_BODY_MB=1") {
		t.Fatalf("over cap: %d %s", resp.StatusCode, text)
	}
	// A body of unknown length could only be cut after part of it left.
	resp, text = do(t, "POST", p.base+"/api/v1/flux-pro-1.1-ultra-finetuned", io.MultiReader(bytes.NewReader(body[:10])), nil)
	if resp.StatusCode != http.StatusLengthRequired {
		t.Fatalf("chunked body: %d %s", resp.StatusCode, text)
	}
	if n := len(up.requests()); n != 0 || up.conns.Load() != 0 {
		t.Fatalf("upstream saw %d requests on %d connections, want none", n, up.conns.Load())
	}
	resp, text = do(t, "POST", p.base+"/api/v1/flux-pro-1.1-ultra-finetuned", bytes.NewReader(body[:1<<20]), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("at the cap: %d %s", resp.StatusCode, text)
	}
	if r := up.requests(); len(r) != 1 || r[0].bodyLen != 1<<20 {
		t.Fatalf("at the cap the whole body should arrive: %+v", r)
	}
}

// The 100-continue dance: a client that waits before sending its body gets
// the 413 without sending a byte.
func TestOverCapAnswersBeforeTheBodyIsSent(t *testing.T) {
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"MAX_BODY_MB": "1"})
	conn := dialProxy(t, p)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /api/v1/finetune HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", 300<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(up.requests()) != 0 {
		t.Fatal("upstream was called")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	up := newFakeBFL(t)
	up.mux = http.NewServeMux()
	entered, release := make(chan struct{}), make(chan struct{})
	up.mux.HandleFunc("GET /v1/get_result", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, `{}`)
	})
	up.mux.HandleFunc("GET /v1/credits", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"credits":1}`)
	})
	p := startLive(t, up, map[string]string{"MAX_CONCURRENT": "1"})
	done := make(chan int, 1)
	go func() {
		resp, err := client().Get(p.base + "/api/v1/get_result?id=slow")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached upstream")
	}
	resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "MAX_CONCURRENT") {
		t.Errorf("second request: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", p.base+"/healthz", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/healthz is not an API call and should not be limited: %d", resp.StatusCode)
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("first request ended %d", code)
	}
	if resp, _ := do(t, "GET", p.base+"/api/v1/credits", nil, nil); resp.StatusCode != 200 {
		t.Errorf("after the slot freed: %d", resp.StatusCode)
	}
}

// patternReader yields n bytes without holding them, so the test itself
// adds nothing to the process's memory.
type patternReader struct{ left int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	r.left -= int64(len(p))
	return len(p), nil
}

// peakRSS resets the kernel's high-water mark when it can and returns a
// function reporting the growth of the peak since.
func peakRSS(t testing.TB) func() int64 {
	readKB := func(field string) int64 {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Skipf("no /proc/self/status: %v", err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				return n
			}
		}
		t.Skipf("%s not in /proc/self/status", field)
		return 0
	}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
	reset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	base := readKB("VmRSS")
	if !reset {
		base = readKB("VmHWM")
	}
	return func() int64 { return (readKB("VmHWM") - base) << 10 }
}

// TestLargeUploadStreams pushes 200 MB through the proxy under a raised cap
// and checks the process's peak RSS grows by less than 64 MB: the body is
// streamed, never held.
func TestLargeUploadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB upload skipped in -short mode")
	}
	const size = 200 << 20
	up := newFakeBFL(t)
	p := startLive(t, up, map[string]string{"MAX_BODY_MB": "300"})
	growth := peakRSS(t)
	start := time.Now()
	req, err := http.NewRequest("POST", p.base+"/api/v1/finetune", &patternReader{left: size})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	g := growth()
	if r := up.requests(); len(r) != 1 || r[0].bodyLen != size {
		t.Fatalf("upstream got %+v, want one %d-byte body", r, size)
	}
	t.Logf("200 MB through the proxy in %v (%.0f MB/s); peak RSS growth %.1f MB", elapsed.Round(time.Millisecond), 200/elapsed.Seconds(), float64(g)/(1<<20))
	if g >= 64<<20 {
		t.Fatalf("peak RSS grew by %.1f MB, want < 64 MB", float64(g)/(1<<20))
	}
}

// BenchmarkLargeUpload reports time and peak RSS growth for 200 MB uploads.
func BenchmarkLargeUpload(b *testing.B) {
	const size = 200 << 20
	up := newFakeBFL(b)
	p := startLive(b, up, map[string]string{"MAX_BODY_MB": "300"})
	growth := peakRSS(b)
	c := &http.Client{Timeout: 2 * time.Minute}
	b.SetBytes(size)
	for b.Loop() {
		req, _ := http.NewRequest("POST", p.base+"/api/v1/finetune", &patternReader{left: size})
		req.ContentLength = size
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(growth())/(1<<20), "peak-RSS-growth-MB")
}
