//go:build !js

// Package e2e drives the built PWA in headless Chromium against the proxy in
// simulated mode. It runs only when E2E_SITE names a built site (make
// test-e2e sets it); then a missing Chromium is a failure, not a skip.
//
// Shared helpers for every e2e file: StartProxy, NewBrowser, Browser.Open,
// Browser.Do, Eval, Browser.WaitText, Browser.WaitTrue, Browser.Problems.
//
// The package builds natively only (//go:build !js): chromedp does not
// build for js/wasm, and make vet leaves it out of its js/wasm pass.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/fluxforge/fluxforge/proxy"
)

// StepTimeout bounds one browser step; a noisy 2-core machine needs slack.
const StepTimeout = 45 * time.Second

func TestMain(m *testing.M) {
	site := os.Getenv("E2E_SITE")
	if site == "" {
		fmt.Println("e2e: E2E_SITE is not set, skipping the browser tests (make test-e2e sets it)")
		os.Exit(0)
	}
	if _, err := os.Stat(filepath.Join(site, "index.html")); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: E2E_SITE=%s holds no built site: %v\n", site, err)
		os.Exit(1)
	}
	if _, err := os.Stat(ChromiumPath()); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: E2E_SITE is set but Chromium is missing at %s: %v\n", ChromiumPath(), err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// SiteDir is the built site under test.
func SiteDir() string { return os.Getenv("E2E_SITE") }

// ChromiumPath is the browser binary: $CHROMIUM, or Debian's.
func ChromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// Proxy is the product's server, running in this process.
type Proxy struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port, to restart on the same origin

	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
	log    *syncBuffer
}

// StartProxy runs proxy.Run in simulated mode on a free loopback port, serving
// E2E_SITE, with short simulated durations; env adds or overrides variables.
// The proxy stops when the test ends.
func StartProxy(t *testing.T, env map[string]string) *Proxy {
	t.Helper()
	vars := map[string]string{
		"ADDR":                 "127.0.0.1:0",
		"SITE_DIR":             SiteDir(),
		"SIM_TRAIN_SECONDS":    "3",
		"SIM_GENERATE_SECONDS": "0.5",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{cancel: cancel, done: make(chan error, 1), log: &syncBuffer{}}
	go func() { p.done <- proxy.Run(ctx, func(k string) string { return vars[k] }, p.log, p.log) }()
	deadline := time.Now().Add(20 * time.Second)
	for p.URL == "" {
		select {
		case err := <-p.done:
			cancel()
			t.Fatalf("proxy stopped at start: %v\n%s", err, p.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("proxy printed no address within 20s:\n%s", p.log)
		}
		if _, after, ok := strings.Cut(p.log.String(), "listening on "); ok {
			p.URL = strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
			p.Addr = strings.TrimPrefix(p.URL, "http://")
		}
	}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop shuts the proxy down and waits for it; stopping twice is fine.
func (p *Proxy) Stop(t *testing.T) {
	t.Helper()
	p.stop.Do(func() {
		p.cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("proxy: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("proxy did not stop within 40s")
		}
	})
}

// Log is everything the proxy wrote.
func (p *Proxy) Log() string { return p.log.String() }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Browser is one headless Chromium with a fresh profile, recording console
// errors, uncaught exceptions and CSP violations.
type Browser struct {
	Ctx context.Context

	mu       sync.Mutex
	problems []string
}

// NewBrowser starts Chromium; it closes when the test ends.
func NewBrowser(t *testing.T) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &Browser{Ctx: ctx}
	// The first action starts the browser and binds it to its context, so it
	// gets ctx itself; a timer stands in for the deadline.
	watchdog := time.AfterFunc(StepTimeout, cancel)
	err := chromedp.Do(ctx)
	watchdog.Stop()
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for msg, err := range messages {
			if err != nil {
				return
			}
			if isProblem(msg) {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s %s: %s", msg.Type, msg.URL, msg.Text))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func isProblem(m chromedp.ConsoleMessage) bool {
	return m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException ||
		strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy")
}

// Problems returns the console errors, exceptions and CSP violations so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// ClearProblems forgets what was recorded, e.g. before going offline on purpose.
func (b *Browser) ClearProblems() {
	b.mu.Lock()
	b.problems = nil
	b.mu.Unlock()
}

// CheckConsole fails the test for every recorded problem.
func (b *Browser) CheckConsole(t *testing.T) {
	t.Helper()
	for _, p := range b.Problems() {
		t.Errorf("console: %s", p)
	}
}

// Do runs steps under StepTimeout and fails the test on error.
func (b *Browser) Do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates a JavaScript expression (awaiting a promise) and returns its value.
func Eval[T any](t *testing.T, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %q: %v", expr, err)
	}
	return v
}

// Open loads url and waits until the wasm runs (go-app removes its loader then).
func (b *Browser) Open(t *testing.T, url string) {
	t.Helper()
	b.Do(t, chromedp.Navigate(url), WaitWasm())
}

// WaitWasm waits until the app's wasm has started.
func WaitWasm() chromedp.Action[chromedp.Void] {
	return chromedp.WaitNotPresent(chromedp.ID("app-wasm-loader"))
}

// WaitText waits until the element's text contains want and returns it.
func (b *Browser) WaitText(t *testing.T, sel chromedp.CSS, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	var last string
	for {
		txt, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err == nil {
			last = txt
			if strings.Contains(txt, want) {
				return txt
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: text %q never contained %q", sel, last, want)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitTrue polls a JavaScript condition until it is true. A condition that
// throws counts as not yet true: most read an element the page may not have
// drawn yet (null.checked). If it never holds, the failure shows what the
// condition last gave, its exception included.
func (b *Browser) WaitTrue(t *testing.T, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	tolerant := "(async () => { try { return !!(await (" + expr + ")); } catch (e) { return false; } })()"
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](tolerant,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0)))
		if err == nil {
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if !navigatedAway(err) {
			t.Fatalf("poll %s: %v", expr, err)
		}
		// The page navigated while the condition ran (a reload the test
		// just clicked): ask the new page.
		time.Sleep(100 * time.Millisecond)
	}
	lctx, lcancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer lcancel()
	last, lerr := chromedp.Run(lctx, chromedp.Evaluate[any](expr, chromedp.EvalAwaitPromise))
	if lerr != nil {
		t.Fatalf("condition never held: %s\nlast: %v", expr, lerr)
	}
	t.Fatalf("condition never held: %s\nlast: %v", expr, last)
}

// WaitOfflineReady waits until the service worker controls the page and has
// cached the app, so a reload works with the server gone.
func (b *Browser) WaitOfflineReady(t *testing.T) {
	t.Helper()
	b.WaitTrue(t, `navigator.serviceWorker.controller !== null`)
	b.WaitTrue(t, `(async () => {
		const keys = await caches.keys();
		if (keys.length === 0) return false;
		const c = await caches.open(keys[0]);
		return !!(await c.match("/web/app.wasm")) && !!(await c.match("/"));
	})()`)
}

// Download is a file the browser saved.
type Download struct {
	Name string // the name the page suggested
	Data []byte
}

// Downloads makes the browser save downloads into a fresh directory and
// returns a channel with each one once complete. With allowAndName Chromium
// saves a download under its GUID, so the suggested name comes from the
// event that announced it.
func (b *Browser) Downloads(t *testing.T) <-chan Download {
	t.Helper()
	dir := t.TempDir()
	out := make(chan Download, 8)
	var mu sync.Mutex
	names := map[string]string{}
	completed := make(chan browser.EventDownloadProgress, 8)
	if err := chromedp.ListenBrowser(b.Ctx, func(ev any) {
		switch ev := ev.(type) {
		case *browser.EventDownloadWillBegin:
			mu.Lock()
			names[ev.GUID] = ev.SuggestedFilename
			mu.Unlock()
		case *browser.EventDownloadProgress:
			if ev.State == browser.DownloadProgressStateCompleted || ev.State == browser.DownloadProgressStateCanceled {
				select {
				case completed <- *ev:
				default: // the test takes fewer than it caused; it fails on its own
				}
			}
		}
	}); err != nil {
		t.Fatalf("listen for downloads: %v", err)
	}
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true),
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	go func() {
		for ev := range completed {
			mu.Lock()
			name := names[ev.GUID]
			mu.Unlock()
			d := Download{Name: name}
			if ev.State == browser.DownloadProgressStateCompleted {
				d.Data, _ = os.ReadFile(filepath.Join(dir, ev.GUID))
			}
			out <- d
		}
	}()
	return out
}

// NextDownload waits for the next completed download.
func NextDownload(t *testing.T, downloads <-chan Download) Download {
	t.Helper()
	select {
	case d := <-downloads:
		if d.Data == nil {
			t.Fatalf("download %q was cancelled or not saved", d.Name)
		}
		return d
	case <-time.After(StepTimeout):
		t.Fatalf("no download within %v", StepTimeout)
		return Download{}
	}
}

// navigatedAway reports a CDP error from a page that was replaced while a
// script ran in it.
func navigatedAway(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") ||
		strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Inspected target navigated or closed")
}

// TestWaitTrueWaitsForAnElementNotYetDrawn: a condition on an element the
// page draws later throws until then; WaitTrue must keep waiting, as it
// failed TestProxyDefaults in CI when the settings page was slow to draw.
func TestWaitTrueWaitsForAnElementNotYetDrawn(t *testing.T) {
	b := NewBrowser(t)
	b.Do(t, chromedp.Navigate("about:blank"))
	Eval[bool](t, b, `(setTimeout(() => {
		const box = document.createElement('input');
		box.type = 'checkbox'; box.id = 'late'; box.checked = true;
		document.body.append(box);
	}, 300), true)`)
	b.WaitTrue(t, `document.querySelector('#late').checked`)
}

// TestWaitTrueOutlastsANavigation: a page replaced while WaitTrue polls it
// (a reload the test clicked) is not a failure; the wait goes on in the new
// page, as TestUpdateBanner needs after its reload button.
func TestWaitTrueOutlastsANavigation(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	b.Do(t, chromedp.Navigate(p.URL+"/healthz"))
	Eval[bool](t, b, `(setTimeout(() => location.reload(), 300), true)`)
	b.WaitTrue(t, `performance.getEntriesByType('navigation')[0]?.type === 'reload'`)
}
