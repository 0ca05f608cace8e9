package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fluxforge/fluxforge/build/benchcmp/measure"
)

// proxyProcess is a proxy binary this program started and must stop.
type proxyProcess struct {
	cmd    *exec.Cmd
	base   string
	debug  string // base URL of its pprof listener, if it printed one
	logf   *os.File
	exited chan error
}

// loadSimEnv is the simulator's configuration for a load test: tasks short
// enough to finish many times a minute, and credits that never run out.
// Everything else is the default, the proxy's MAX_CONCURRENT included.
var loadSimEnv = []string{
	"SIM_TRAIN_SECONDS=2",
	"SIM_GENERATE_SECONDS=2",
	"SIM_CREDITS=1000000000",
}

// proxyEnv is what every proxy this program starts gets: a free loopback
// port, and its pprof listener on another so the report can show its
// goroutines. gomaxprocs, when above 0, overrides the proxy's own choice.
func proxyEnv(gomaxprocs int) []string {
	env := []string{"ADDR=127.0.0.1:0", "DEBUG_ADDR=127.0.0.1:0"}
	if gomaxprocs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	return env
}

// startSimulated starts the proxy in simulated mode, the simulator inside it.
func startSimulated(ctx context.Context, bin string, gomaxprocs int) (*proxyProcess, error) {
	// BFL_API_KEY is emptied whatever the caller's environment holds: a load
	// test must never reach BFL.
	env := append(append([]string{"BFL_API_KEY="}, proxyEnv(gomaxprocs)...), loadSimEnv...)
	return startServer(ctx, bin, env)
}

// startLive starts the standalone simulator with a fresh key, then the proxy
// in live mode pointed at it; the proxy process is the one measured.
func startLive(ctx context.Context, proxyBin, simBin string, gomaxprocs int) (proxyP, simP *proxyProcess, err error) {
	key := "load-" + rand.Text()
	simP, err = startServer(ctx, simBin, append([]string{"SIM_KEY=" + key, "ADDR=127.0.0.1:0"}, loadSimEnv...))
	if err != nil {
		return nil, nil, err
	}
	proxyP, err = startServer(ctx, proxyBin, append([]string{"BFL_API_KEY=" + key, "BFL_API_URL=" + simP.base}, proxyEnv(gomaxprocs)...))
	if err != nil {
		simP.kill()
		return nil, nil, err
	}
	return proxyP, simP, nil
}

// startServer runs bin with env added to this process's environment and
// waits for the "listening on http://..." line it prints on stdout, noting
// the "debug: pprof on http://..." line the proxy prints before it.
func startServer(ctx context.Context, bin string, env []string) (*proxyProcess, error) {
	logf, err := os.CreateTemp("", "loadgen-server-*.log")
	if err != nil {
		return nil, fmt.Errorf("server log file: %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = withEnv(os.Environ(), env)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdout: %w", bin, err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.Remove(logf.Name())
		return nil, fmt.Errorf("start %s (run `make proxy` first): %w", bin, err)
	}
	p := &proxyProcess{cmd: cmd, logf: logf, exited: make(chan error, 1)}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "debug: pprof on "); ok {
				// Written before found is sent, so read safely after it.
				p.debug = strings.TrimSuffix(rest, "/debug/pprof/")
			}
			if _, rest, ok := strings.Cut(sc.Text(), "listening on "); ok {
				addr, _, _ := strings.Cut(rest, " ")
				select {
				case found <- addr:
				default:
				}
			}
		}
		// Reading to EOF before Wait, as StdoutPipe requires.
		p.exited <- cmd.Wait()
	}()
	select {
	case p.base = <-found:
	case err := <-p.exited:
		p.cleanup()
		return nil, fmt.Errorf("%s exited before listening: %v; log: %s", bin, err, p.logTail())
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s printed no \"listening on\" line within 30s", bin)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
	return p, nil
}

func (p *proxyProcess) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for a clean exit.
func (p *proxyProcess) stop(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("signal proxy: %w", err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // kill, deferred, must not block
		p.cleanup()
		if err != nil {
			return 0, fmt.Errorf("exit after SIGTERM: %w", err)
		}
		return time.Since(start), nil
	case <-time.After(limit):
		p.kill()
		return 0, fmt.Errorf("still running %v after SIGTERM", limit)
	}
}

// kill ends the process if it is still running; safe to call after stop.
func (p *proxyProcess) kill() {
	select {
	case err := <-p.exited:
		p.exited <- err
	default:
		_ = p.cmd.Process.Kill()
		p.exited <- <-p.exited
	}
	p.cleanup()
}

func (p *proxyProcess) cleanup() {
	p.logf.Close()
	os.Remove(p.logf.Name())
}

func (p *proxyProcess) logTail() string {
	b, _ := os.ReadFile(p.logf.Name())
	return string(b[max(0, len(b)-500):])
}

// withEnv returns base with every variable in set replaced or added.
func withEnv(base, set []string) []string {
	out := make([]string, 0, len(base)+len(set))
	names := map[string]bool{}
	for _, kv := range set {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); !names[name] {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

func waitHealthy(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var h struct {
				Mode string `json:"mode"`
			}
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%s/healthz never answered 200: %w", base, err)
		}
	}
}

// readyModel trains a small finetune (three images) and waits until it is
// Ready, so generation requests have a model to name.
func readyModel(ctx context.Context, a *api) (string, error) {
	body, err := measure.Dataset{Images: 3, Side: 64, Seed: 7}.Body()
	if err != nil {
		return "", fmt.Errorf("build the training set: %w", err)
	}
	b, _, err := a.do(ctx, kindSubmit, http.MethodPost, "/api/v1/finetune", body)
	if err != nil {
		return "", fmt.Errorf("submit the finetune the load test generates with: %w", err)
	}
	var s submitted
	if err := json.Unmarshal(b, &s); err != nil || s.PollingURL == "" {
		return "", fmt.Errorf("finetune answer %q lacks polling_url", b)
	}
	p, err := a.pollUntilDone(ctx, s.PollingURL, 500*time.Millisecond, 3*time.Minute)
	if err != nil {
		return "", fmt.Errorf("wait for the finetune: %w", err)
	}
	if p.Status != "Ready" {
		return "", fmt.Errorf("the finetune ended %q", p.Status)
	}
	if p.Result.FinetuneID != "" {
		return p.Result.FinetuneID, nil
	}
	return s.ID, nil
}

// monitor reads a process's figures from /proc, and its goroutine count
// from its pprof listener when it has one.
type monitor struct {
	pid   int
	debug string // base URL of the pprof listener; empty: no goroutine count
	mu    sync.Mutex
}

type snapshot struct {
	mem        measure.Mem
	fds        int
	goroutines int // -1: unknown
	err        error
}

func newMonitor(pid int, debug string) *monitor { return &monitor{pid: pid, debug: debug} }

func (m *monitor) snap() snapshot {
	if m.pid == 0 {
		return snapshot{err: errors.New("no pid given")}
	}
	mem, err := measure.ReadMem(m.pid)
	if err != nil {
		return snapshot{err: err}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.pid))
	if err != nil {
		return snapshot{err: fmt.Errorf("count open files of pid %d: %w", m.pid, err)}
	}
	s := snapshot{mem: mem, fds: len(fds), goroutines: -1}
	if m.debug != "" {
		if s.goroutines, err = goroutines(m.debug); err != nil {
			return snapshot{err: err}
		}
	}
	return s
}

var totalRE = regexp.MustCompile(`goroutine profile: total (\d+)`)

// goroutines reads the count from the goroutine profile's text form.
func goroutines(debug string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, debug+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	defer resp.Body.Close()
	// The count is on the first line; the stacks after it can be long.
	head, err := bufio.NewReader(resp.Body).ReadString('\n')
	m := totalRE.FindStringSubmatch(head)
	if resp.StatusCode != http.StatusOK || m == nil {
		return 0, fmt.Errorf("goroutine profile: status %d, first line %q (%v)", resp.StatusCode, head, err)
	}
	return strconv.Atoi(m[1])
}

// duringLoad summarises the samples taken while the users ran.
type duringLoad struct {
	n                          int
	peakRSS                    int64
	peakThreads, peakF, peakGo int
	first, last                snapshot
	rss                        []int64 // every sample, to show a trend
	gos                        []int
}

// sampleEvery samples until the returned function is called, which returns
// the summary.
func (m *monitor) sampleEvery(d time.Duration) func() duringLoad {
	var res duringLoad
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			s := m.snap()
			if s.err != nil {
				continue
			}
			m.mu.Lock()
			if res.n == 0 {
				res.first = s
			}
			res.n++
			res.last = s
			res.rss = append(res.rss, s.mem.RSS)
			res.gos = append(res.gos, s.goroutines)
			res.peakGo = max(res.peakGo, s.goroutines)
			res.peakRSS = max(res.peakRSS, s.mem.RSS)
			res.peakThreads = max(res.peakThreads, s.mem.Threads)
			res.peakF = max(res.peakF, s.fds)
			m.mu.Unlock()
		}
	}()
	return func() duringLoad {
		close(done)
		<-stopped
		m.mu.Lock()
		defer m.mu.Unlock()
		return res
	}
}

func (m *monitor) print(w io.Writer, before snapshot, during duringLoad, after snapshot, settle time.Duration) {
	source := "goroutines from its pprof listener (DEBUG_ADDR)"
	if m.debug == "" {
		source = "no pprof listener, so no goroutine count"
	}
	fmt.Fprintf(w, "\nproxy process (pid %d) from /proc; %s\n", m.pid, source)
	if before.err != nil {
		fmt.Fprintf(w, "  no process figures: %v\n", before.err)
		return
	}
	fmt.Fprintf(w, "  %-28s %10s %11s %8s %8s\n", "", "RSS", "goroutines", "threads", "fds")
	row := func(name string, rss int64, gos, threads, fds int) {
		g := "-"
		if gos >= 0 {
			g = strconv.Itoa(gos)
		}
		fmt.Fprintf(w, "  %-28s %10s %11s %8d %8d\n", name, measure.MB(rss), g, threads, fds)
	}
	row("before", before.mem.RSS, before.goroutines, before.mem.Threads, before.fds)
	if during.n > 0 {
		row(fmt.Sprintf("during: first of %d samples", during.n), during.first.mem.RSS, during.first.goroutines, during.first.mem.Threads, during.first.fds)
		row("during: last sample", during.last.mem.RSS, during.last.goroutines, during.last.mem.Threads, during.last.fds)
		row("during: peak", during.peakRSS, during.peakGo, during.peakThreads, during.peakF)
	}
	if len(during.rss) > 1 {
		step := max(1, len(during.rss)/12)
		var rss, gos []string
		for i := 0; i < len(during.rss); i += step {
			rss = append(rss, fmt.Sprintf("%.0f", float64(during.rss[i])/(1<<20)))
			gos = append(gos, strconv.Itoa(during.gos[i]))
		}
		fmt.Fprintf(w, "  RSS during, MB, one sample every %d s: %s\n", step, strings.Join(rss, " "))
		if m.debug != "" {
			fmt.Fprintf(w, "  goroutines during, same samples: %s\n", strings.Join(gos, " "))
		}
	}
	if after.err != nil {
		fmt.Fprintf(w, "  after: %v\n", after.err)
		return
	}
	row(fmt.Sprintf("after (+%v idle)", settle), after.mem.RSS, after.goroutines, after.mem.Threads, after.fds)
}
