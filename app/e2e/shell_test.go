//go:build !js

package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestShell walks the shell as a user would: first visit, tabs, deep links,
// settings across a reload, then a reload with the server gone.
func TestShell(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)

	b.Open(t, p.URL+"/")
	b.WaitText(t, "#mode-badge", "simulated")
	b.WaitText(t, "#credits", "credits")
	if title := Eval[string](t, b, `document.title`); !strings.Contains(title, "FluxForge") {
		t.Errorf("title %q", title)
	}
	assertTab(t, b, "finetune")

	t.Run("tabs navigate", func(t *testing.T) {
		for _, name := range []string{"models", "generate", "finetune"} {
			b.Do(t, chromedp.Click(chromedp.CSS("#nav-"+name)))
			b.WaitTrue(t, `location.pathname === "/`+name+`"`)
			assertTab(t, b, name)
		}
	})

	t.Run("deep links", func(t *testing.T) {
		for _, name := range []string{"models", "generate", "finetune"} {
			b.Open(t, p.URL+"/"+name)
			assertTab(t, b, name)
		}
	})

	t.Run("settings persist across a reload", func(t *testing.T) {
		const box = "#setting-flag-batches"
		b.Open(t, p.URL+"/settings")
		b.WaitText(t, "#proxy-info", "Simulated mode")
		if Eval[bool](t, b, `document.querySelector("`+box+`").checked`) {
			t.Fatal("batches flag is on before anyone turned it on")
		}
		b.Do(t, chromedp.Click(chromedp.CSS(box)))
		b.Do(t, chromedp.WaitVisible(chromedp.CSS("#reset-flag-batches")))
		// Saving is asynchronous: wait until the record is in IndexedDB.
		b.WaitTrue(t, `new Promise((ok) => {
			const r = indexedDB.open("fluxforge");
			r.onsuccess = () => {
				const g = r.result.transaction("settings").objectStore("settings").get("user");
				g.onsuccess = () => { ok(typeof g.result === "string" && g.result.includes('"flag.batches":true')); r.result.close(); };
				g.onerror = () => ok(false);
			};
			r.onerror = () => ok(false);
		})`)
		b.Do(t, chromedp.Reload(), WaitWasm())
		b.WaitTrue(t, `!!document.querySelector("`+box+`") && document.querySelector("`+box+`").checked`)
		b.WaitText(t, "#settings", "your choice")

		b.Do(t, chromedp.Click(chromedp.CSS("#reset-flag-batches")))
		b.WaitTrue(t, `!document.querySelector("`+box+`").checked`)
		b.Do(t, chromedp.Reload(), WaitWasm())
		b.WaitTrue(t, `!!document.querySelector("`+box+`") && !document.querySelector("`+box+`").checked`)
	})

	t.Run("proxy URL is checked", func(t *testing.T) {
		b.Open(t, p.URL+"/settings")
		b.Do(t, chromedp.SendKeys(chromedp.CSS("#setting-proxy_url"), "ftp://x\r"), chromedp.Blur(chromedp.CSS("#setting-proxy_url")))
		b.WaitText(t, "#setting-proxy_url-error", "must start with https://")
	})

	b.CheckConsole(t)

	t.Run("offline after the first visit", func(t *testing.T) {
		b.Open(t, p.URL+"/finetune")
		b.WaitOfflineReady(t)
		if Eval[bool](t, b, `!!document.querySelector("#update-banner")`) {
			t.Error("the first install was announced as an update")
		}
		// Chromium offers installation once the worker and manifest qualify.
		b.Do(t, chromedp.WaitVisible(chromedp.CSS("#install")))
		p.Stop(t)
		b.ClearProblems()
		b.Do(t, chromedp.Reload(), WaitWasm())
		assertTab(t, b, "finetune")
		b.WaitText(t, "#mode-badge", "offline")
		// A deep link never opened before still opens: the worker falls back to the cached app.
		b.Open(t, p.URL+"/generate?model=abc")
		assertTab(t, b, "generate")
		for _, problem := range b.Problems() {
			// With the server gone, failed requests to it are expected (the
			// favicon, say, never goes through the worker); anything else is not.
			if !strings.Contains(problem, "Failed to load resource") && !strings.Contains(problem, "Failed to fetch") {
				t.Errorf("console while offline: %s", problem)
			}
		}
	})
}

// assertTab checks the shell shows the named tab: its link is current and the title names it.
func assertTab(t *testing.T, b *Browser, name string) {
	t.Helper()
	b.WaitTrue(t, `(() => {
		const a = document.querySelector("#nav-`+name+`");
		return !!a && a.getAttribute("aria-current") === "page" && document.title.toLowerCase().startsWith("`+name+`");
	})()`)
}

// TestUpdateBanner deploys a new version under a running page: the page
// offers a reload and does not force one; after it, the new version runs.
func TestUpdateBanner(t *testing.T) {
	p := StartProxy(t, nil)
	b := NewBrowser(t)
	b.Open(t, p.URL+"/")
	b.WaitOfflineReady(t)
	next := nextVersionOf(t, SiteDir())
	p.Stop(t)
	StartProxy(t, map[string]string{"ADDR": p.Addr, "SITE_DIR": next})
	// The shell checks for a new version when the page becomes visible again.
	b.Do(t, chromedp.Evaluate[chromedp.Void](`document.dispatchEvent(new Event("visibilitychange"))`))
	b.Do(t, chromedp.WaitVisible(chromedp.CSS("#update-banner")))
	b.Do(t, chromedp.Click(chromedp.CSS("#update-reload")), WaitWasm())
	b.WaitTrue(t, `!document.querySelector("#update-banner")`)
	b.WaitTrue(t, `caches.keys().then((k) => k.length === 1 && k[0].endsWith("-next"))`)
	b.CheckConsole(t)
}

// nextVersionOf copies a built site and gives its worker a new version, as a
// deploy of changed files would.
func nextVersionOf(t *testing.T, site string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(site, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(site, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == "app-worker.js" {
			const marker = `const cacheName = "app-" + "`
			i := strings.Index(string(data), marker)
			if i < 0 {
				t.Fatalf("app-worker.js has no %q", marker)
			}
			at := i + len(marker)
			at += strings.IndexByte(string(data[at:]), '"')
			data = []byte(string(data[:at]) + "-next" + string(data[at:]))
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy site: %v", err)
	}
	return dst
}

// TestLoadTimes measures time to interactive on loopback, for the first visit
// (fresh profile: everything from the network) and repeat visits (the
// service worker's cache). Run with E2E_BENCH=1 (build/pwa-size.sh does).
// Interactive means: the wasm runs and the shell has loaded the user's
// settings, so the tab shows their work.
func TestLoadTimes(t *testing.T) {
	if os.Getenv("E2E_BENCH") != "1" {
		t.Skip("set E2E_BENCH=1 to measure load times")
	}
	p := StartProxy(t, nil)
	const browsers, repeats = 3, 3
	var first, repeat, transfer []float64
	for range browsers {
		b := NewBrowser(t)
		if _, err := chromedp.Call(b.Ctx, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: markInteractive}); err != nil {
			t.Fatal(err)
		}
		first = append(first, interactive(t, b, p.URL+"/finetune"))
		transfer = append(transfer, Eval[float64](t, b, `performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).reduce((n, e) => n + (e.transferSize || 0), 0)`))
		b.WaitOfflineReady(t)
		for range repeats {
			repeat = append(repeat, interactive(t, b, p.URL+"/finetune"))
		}
		b.CheckConsole(t)
	}
	fmt.Printf("first visit: time to interactive median %.0f ms (runs %s), %.2f MB transferred\n",
		median(first), ms(first), median(transfer)/1e6)
	fmt.Printf("repeat visit: time to interactive median %.0f ms (runs %s)\n", median(repeat), ms(repeat))
}

// markInteractive records, in the page, when the app becomes interactive.
const markInteractive = `new MutationObserver((_, obs) => {
	if (!document.getElementById("app-wasm-loader") && document.querySelector('#shell[data-ready="true"]')) {
		window.fluxforgeInteractive = performance.now();
		obs.disconnect();
	}
}).observe(document, { subtree: true, childList: true, attributes: true });`

func interactive(t *testing.T, b *Browser, url string) float64 {
	t.Helper()
	b.Do(t, chromedp.Navigate(url))
	b.WaitTrue(t, `typeof window.fluxforgeInteractive === "number"`)
	return Eval[float64](t, b, `window.fluxforgeInteractive`)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

// TestCoreInBrowser runs app/core's browser tests (IndexedDB storage, the
// promise helper, XMLHttpRequest uploads with progress) as a js/wasm test
// binary in Chromium, on a page the proxy serves, so the upload goes through
// the proxy to the simulator. Under Node these tests skip; here a skip fails.
func TestCoreInBrowser(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", filepath.Join(dir, "core.test.wasm"), "github.com/fluxforge/fluxforge/app/core")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the core tests for js/wasm: %v\n%s", err, out)
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	wasmExec, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"wasm_exec.js": string(wasmExec),
		"runner.html":  `<!doctype html><title>core tests</title><script src="/wasm_exec.js"></script><script src="/runner.js"></script>`,
		// Scripts are external files: the proxy's CSP allows no inline script.
		"runner.js": `const lines = [];
window.testOutput = lines;
const log = console.log;
console.log = (...a) => { lines.push(a.join(" ")); log(...a); };
const go = new Go();
go.argv = ["core.test", "-test.v", "-test.run=^TestBrowser"];
go.exit = (code) => { window.goExit = code; };
fetch("/core.test.wasm")
  .then((r) => r.arrayBuffer())
  .then((b) => WebAssembly.instantiate(b, go.importObject))
  .then((r) => go.run(r.instance))
  .catch((e) => { lines.push("runner: " + e); window.goExit = -1; });`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := StartProxy(t, map[string]string{"SITE_DIR": dir})
	b := NewBrowser(t)
	b.Do(t, chromedp.Navigate(p.URL+"/runner"))
	b.WaitTrue(t, `window.goExit !== undefined`)
	out := Eval[string](t, b, `window.testOutput.join("\n")`)
	if code := Eval[int](t, b, `window.goExit`); code != 0 {
		t.Fatalf("core tests in Chromium exited %d:\n%s", code, out)
	}
	for _, name := range []string{"TestBrowserIndexedDB", "TestBrowserAwaitRejects", "TestBrowserUploadProgress"} {
		if !strings.Contains(out, "--- PASS: "+name) {
			t.Errorf("%s did not pass in Chromium:\n%s", name, out)
		}
	}
	t.Log(out)
}

// TestProxyDefaults: the proxy's CONFIG_FILE sets flag and UI defaults; the
// settings page says where each value comes from, and the user still wins.
func TestProxyDefaults(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"flags":{"batches":true},"ui":{"start_tab":"models"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := StartProxy(t, map[string]string{"CONFIG_FILE": file})
	b := NewBrowser(t)
	b.Open(t, p.URL+"/")
	assertTab(t, b, "models")
	b.Open(t, p.URL+"/settings")
	b.WaitTrue(t, `document.querySelector("#setting-flag-batches").checked`)
	b.WaitText(t, "#settings", "set by the proxy")
	b.Do(t, chromedp.Click(chromedp.CSS("#setting-flag-batches")))
	b.Do(t, chromedp.WaitVisible(chromedp.CSS("#reset-flag-batches")))
	b.WaitTrue(t, `!document.querySelector("#setting-flag-batches").checked`)
	b.CheckConsole(t)
}
