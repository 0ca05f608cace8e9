package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/proxy"
)

// startInProcess runs the real proxy in simulated mode inside the test and
// returns its base URL, and that of its pprof listener if env sets
// DEBUG_ADDR.
func startInProcess(t *testing.T, env map[string]string) (base, debug string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- proxy.Run(ctx, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("proxy did not stop within 30s")
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "debug: pprof on "); ok {
				debug = strings.TrimSuffix(rest, "/debug/pprof/")
			}
			if rest, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				found <- rest
			}
		}
	}()
	select {
	case base = <-found:
		return base, debug
	case err := <-done:
		t.Fatalf("proxy exited: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("proxy printed no listening line")
	}
	return "", ""
}

func TestLoadAgainstSimulatedProxy(t *testing.T) {
	base, debug := startInProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "DEBUG_ADDR": "127.0.0.1:0", "SITE_DIR": t.TempDir(),
		"SIM_TRAIN_SECONDS": "0.2", "SIM_GENERATE_SECONDS": "0.3", "SIM_CREDITS": "1000000",
		// A low cap so the run is sure to meet the simulator's 429.
		"SIM_MAX_ACTIVE": "1",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-addr", base, "-pid", strconv.Itoa(os.Getpid()), "-debug-addr", debug,
		"-clients", "12", "-duration", "3s", "-think", "20ms", "-settle", "100ms"}, &out)
	report := out.String()
	t.Log(report)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, k := range kinds {
		m := regexp.MustCompile(`(?m)^` + k + `\s+(\d+)\s`).FindStringSubmatch(report)
		if m == nil {
			t.Fatalf("no row for %s", k)
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Errorf("no %s requests were made", k)
		}
	}
	limited := regexp.MustCompile(`(?m)^submit\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)\s+0$`).FindStringSubmatch(report)
	if limited == nil || limited[1] == "0" {
		t.Errorf("submits should have met 429s, counted apart, with no errors")
	}
	for _, want := range []string{" 0 errors", "before", "during: peak", "after (+100ms idle)", "goroutines during, same samples: "} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	goroutineCounts(t, report)
}

// goroutineCounts checks the before, peak and after rows each give a
// goroutine count (the test process's own here, above zero).
func goroutineCounts(t *testing.T, report string) {
	t.Helper()
	for _, row := range []string{"before", "during: peak", `after \(\+\S+ idle\)`} {
		m := regexp.MustCompile(`(?m)^  ` + row + `\s+\S+ MB\s+(\d+)\s+\d+\s+\d+$`).FindStringSubmatch(report)
		if m == nil || m[1] == "0" {
			t.Errorf("row %q gives no goroutine count", row)
		}
	}
}

func TestRunFailsOnErrors(t *testing.T) {
	// A proxy with a token the load generator does not send: every request
	// is refused, and the run must say so rather than print a clean report.
	base, _ := startInProcess(t, map[string]string{"ADDR": "127.0.0.1:0", "SITE_DIR": t.TempDir(), "PROXY_TOKEN": "secret"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, []string{"-addr", base, "-clients", "2", "-duration", "500ms"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Fatalf("want the setup to fail with 401, got %v", err)
	}
}

// buildServers builds the proxy and simulator binaries as `make proxy` does.
func buildServers(t *testing.T, ctx context.Context) (proxyBin, simBin string) {
	t.Helper()
	dir := t.TempDir()
	for name, pkg := range map[string]string{"fluxforge": "proxy/cmd/fluxforge", "bflsim": "proxy/cmd/bflsim"} {
		build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "github.com/fluxforge/fluxforge/"+pkg)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "fluxforge"), filepath.Join(dir, "bflsim")
}

func TestStartedServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	proxyBin, simBin := buildServers(t, ctx)

	p, err := startSimulated(ctx, proxyBin, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	p.kill() // after stop: must neither block nor fail

	var out bytes.Buffer
	err = run(ctx, []string{"-proxy-bin", proxyBin, "-live-sim", simBin,
		"-clients", "6", "-duration", "2s", "-think", "20ms", "-settle", "100ms"}, &out)
	t.Log(out.String())
	if err != nil {
		t.Fatalf("live run: %v", err)
	}
	for _, want := range []string{"in live mode on http://127.0.0.1:", "upstream " + simBin, " 0 errors",
		"proxy shut down on SIGTERM", "goroutines from its pprof listener"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	goroutineCounts(t, out.String())
}

func TestWithEnvReplaces(t *testing.T) {
	got := withEnv([]string{"BFL_API_KEY=real", "HOME=/root", "ADDR=:8080"}, []string{"BFL_API_KEY=", "ADDR=127.0.0.1:0"})
	slices.Sort(got)
	want := []string{"ADDR=127.0.0.1:0", "BFL_API_KEY=", "HOME=/root"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRecorderTotals(t *testing.T) {
	r := newRecorder()
	r.ok(kindPoll, time.Millisecond)
	r.ok(kindPoll, 2*time.Millisecond)
	r.limited(kindSubmit)
	r.fail(kindImage, reasonOf(errors.New("read tcp: connection reset by peer")))
	n, failed := r.totals()
	if n != 4 || failed != 1 {
		t.Fatalf("totals = %d, %d; want 4, 1", n, failed)
	}
	if r.kinds[kindImage].errors["transport: connection reset"] != 1 {
		t.Fatalf("errors %v", r.kinds[kindImage].errors)
	}
}
