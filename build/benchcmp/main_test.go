package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBFL answers the two benchmarked requests under prefix and counts what
// arrives, so the test can check each way was really exercised with the
// right credentials.
type fakeBFL struct {
	prefix   string
	header   string // header that must be present, and its value
	value    string
	small    atomic.Int64
	uploads  atomic.Int64
	rejected atomic.Int64
	bodySize atomic.Int64
}

func (f *fakeBFL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.header != "" && r.Header.Get(f.header) != f.value {
		http.Error(w, `{"detail":"Not authenticated"}`, http.StatusForbidden)
		return
	}
	switch r.URL.Path {
	case f.prefix + "/v1/credits":
		f.small.Add(1)
		io.WriteString(w, `{"credits":1000}`)
	case f.prefix + "/v1/finetune":
		var body struct {
			FileData string `json:"file_data"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil || body.FileData == "" {
			f.rejected.Add(1)
			http.Error(w, `{"detail":"bad body"}`, http.StatusUnprocessableEntity)
			return
		}
		f.uploads.Add(1)
		f.bodySize.Store(int64(len(b)))
		io.WriteString(w, `{"id":"x","polling_url":"http://x/v1/get_result?id=x"}`)
	default:
		http.NotFound(w, r)
	}
}

func TestRunMeasuresThreeWays(t *testing.T) {
	direct := &fakeBFL{header: "x-key", value: "k"}
	proxy := &fakeBFL{prefix: "/api", header: "Authorization", value: "Bearer tok"}
	nginx := &fakeBFL{}
	candidate := &fakeBFL{prefix: "/api", header: "Authorization", value: "Bearer tok"}
	var srv []*httptest.Server
	for _, h := range []http.Handler{direct, proxy, nginx, candidate} {
		s := httptest.NewServer(h)
		defer s.Close()
		srv = append(srv, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{
		"-direct", srv[0].URL, "-proxy", srv[1].URL, "-nginx", srv[2].URL,
		"-key", "k", "-token", "tok", "-clients", "1,3", "-extra", "cand=" + srv[3].URL, "-duration", "600ms", "-rounds", "2",
		"-upload-mb", "1", "-upload-images", "2", "-uploads", "2",
		"-big-mb", "2", "-proxy-pid", strconv.Itoa(os.Getpid()),
	}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log(report)
	for name, f := range map[string]*fakeBFL{"direct": direct, "proxy": proxy, "nginx": nginx} {
		if f.small.Load() < 10 {
			t.Errorf("%s saw %d small requests", name, f.small.Load())
		}
		// One warm-up and two timed valid uploads each (the spoiled ones are
		// refused); the proxy also gets the big one.
		want := int64(3)
		if name == "proxy" {
			want = 4
		}
		if f.uploads.Load() != want {
			t.Errorf("%s saw %d uploads, want %d", name, f.uploads.Load(), want)
		}
		if f.rejected.Load() != 3 {
			t.Errorf("%s saw %d spoiled uploads, want 3", name, f.rejected.Load())
		}
	}
	if candidate.small.Load() < 10 || candidate.uploads.Load() != 0 {
		t.Errorf("the -extra target saw %d small requests and %d uploads; want many and none",
			candidate.small.Load(), candidate.uploads.Load())
	}
	if n := proxy.bodySize.Load(); n < 2<<20*95/100 || n > 2<<20*105/100 {
		t.Errorf("the big upload was %d bytes, want about 2 MB", n)
	}
	for _, want := range []string{
		"Small JSON round trip", "Finetune upload", "200 x2", "Upload transfer", "422 x2", "Proxy memory during",
		"small p50,  1 clients: proxy/nginx", "small p50,  3 clients", "3 clients: cand/nginx",
		"upload (valid)  p50: proxy/nginx", "upload transfer p50: proxy/nginx",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "WARNING") {
		t.Errorf("no request should have failed:\n%s", report)
	}
}

func TestRunReportsRefusedRequests(t *testing.T) {
	ok := httptest.NewServer(&fakeBFL{})
	defer ok.Close()
	locked := httptest.NewServer(&fakeBFL{header: "x-key", value: "right"})
	defer locked.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-direct", locked.URL, "-proxy", ok.URL, "-nginx", ok.URL, "-key", "wrong",
		"-duration", "300ms", "-rounds", "1"}, &out)
	if err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Fatalf("a wrong key should stop the run naming the status, got %v", err)
	}
}

func TestParseFlagsNeedsAllThree(t *testing.T) {
	if _, err := parseFlags([]string{"-direct", "http://a", "-proxy", "http://b"}); err == nil {
		t.Fatal("missing -nginx should be an error")
	}
	if _, err := parseFlags([]string{"-direct", "a", "-proxy", "b", "-nginx", "c", "-clients", "2,x"}); err == nil ||
		!strings.Contains(err.Error(), "-clients") {
		t.Fatalf("bad -clients should name the flag, got %v", err)
	}
}

// Failed requests are left out of the latencies, so a target whose every
// request failed would show a p50 of 0 and "meet" its target; an upload
// refused at once would pass for a fast one. Both verdicts read INVALID.
func TestVerdictRefusesFiguresWithFailures(t *testing.T) {
	ms := func(n int) []time.Duration { return []time.Duration{time.Duration(n) * time.Millisecond} }
	opt := options{clients: []int{1}, smallTarget: 1.5}
	healthy := []smallResult{
		{target: "direct", clients: 1, lat: ms(1)}, {target: "proxy", clients: 1, lat: ms(2)}, {target: "nginx", clients: 1, lat: ms(2)},
	}
	upload := func(proxyStatus int) uploadBench {
		return uploadBench{want: http.StatusOK, results: []uploadResult{
			{target: "direct", lat: ms(100), statuses: map[int]int{200: 1}},
			{target: "proxy", lat: ms(5), statuses: map[int]int{proxyStatus: 1}},
			{target: "nginx", lat: ms(100), statuses: map[int]int{200: 1}},
		}}
	}
	var out bytes.Buffer
	if !printVerdict(&out, opt, healthy, []uploadBench{upload(200)}) || strings.Contains(out.String(), "INVALID") {
		t.Fatalf("healthy figures judged invalid:\n%s", &out)
	}

	allFailed := slices.Clone(healthy)
	allFailed[1] = smallResult{target: "proxy", clients: 1, errs: 500}
	out.Reset()
	if printVerdict(&out, opt, allFailed, nil) || !strings.Contains(out.String(), "1 clients: proxy/nginx 0.00x (target <= 1.5x: INVALID") {
		t.Errorf("a proxy whose every request failed:\n%s", &out)
	}
	out.Reset()
	if printVerdict(&out, opt, healthy, []uploadBench{upload(502)}) || !strings.Contains(out.String(), "upload (valid)  p50: proxy/nginx 0.05x (target < 1.0x: INVALID") {
		t.Errorf("an upload refused at once:\n%s", &out)
	}
}

// After the warm-up every phase reuses the connections it opened: a phase
// that ended by cancelling its requests in flight closed their
// connections, and each later phase timed that many dials.
func TestPhasesReuseTheWarmedConnections(t *testing.T) {
	const clients, rounds = 4, 3
	var opts options
	var opened []*atomic.Int64
	for _, name := range []string{"direct", "proxy", "nginx"} {
		var n atomic.Int64
		srv := httptest.NewUnstartedServer(&fakeBFL{})
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				n.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		opts.targets = append(opts.targets, target{name: name, base: srv.URL})
		opened = append(opened, &n)
	}
	opts.duration, opts.rounds, opts.reqTimeout = 900*time.Millisecond, rounds, 5*time.Second
	if _, err := benchSmall(t.Context(), opts, clients); err != nil {
		t.Fatal(err)
	}
	for i, n := range opened {
		// The transport may dial one more when a connection comes back to
		// its pool a moment after the next request asked; a dial per
		// client per phase is what this guards against.
		if got := n.Load(); got > 2*clients {
			t.Errorf("%s: %d connections for %d clients over %d rounds", opts.targets[i].name, got, clients, rounds)
		}
	}
}
