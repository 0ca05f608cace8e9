package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// repoRoot walks up to the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// webWith copies the repository's web/ assets and adds a stand-in wasm.
func webWith(t *testing.T, wasm []byte) string {
	t.Helper()
	web := t.TempDir()
	if err := copyDir(filepath.Join(repoRoot(t), "web"), web); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(web, "app.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return web
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGenerateWritesADeployableSite(t *testing.T) {
	wasm := make([]byte, 256<<10)
	_, _ = rand.Read(wasm[:1024]) // mostly zeros, so compression is visible
	web := webWith(t, wasm)
	out, cache := t.TempDir(), t.TempDir()
	s, err := generate(config{Out: out, Web: web, BrotliQuality: 5, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}

	for page, title := range map[string]string{"index.html": "Finetune", "finetune.html": "Finetune", "models.html": "Models", "generate.html": "Generate", "settings.html": "Settings"} {
		html := read(t, filepath.Join(out, page))
		if !strings.Contains(html, "<title>"+title+" · FluxForge</title>") {
			t.Errorf("%s: no %q title", page, title)
		}
		if !strings.Contains(html, `http-equiv="Content-Security-Policy"`) || !strings.Contains(html, "script-src 'self' 'wasm-unsafe-eval'") {
			t.Errorf("%s: no CSP", page)
		}
	}
	// Attribute order varies between renders: find the link's tag, then look inside it.
	if tag := regexp.MustCompile(`<a [^>]*id="nav-models"[^>]*>`).FindString(read(t, filepath.Join(out, "models.html"))); !strings.Contains(tag, `aria-current="page"`) {
		t.Errorf("models.html pre-renders the Models link as %q, want it current", tag)
	}

	worker := read(t, filepath.Join(out, "app-worker.js"))
	for _, want := range []string{
		`const cacheName = "app-" + "` + s.Version + `"`,
		`url.pathname.startsWith("/api/")`, `request.method !== "GET"`, `url.pathname === "/healthz"`,
		"event.waitUntil", `caches.match("/")`,
		`"/finetune"`, `"/models"`, `"/generate"`, `"/settings"`, `"/web/app.wasm"`, `"/web/icon-192.png"`, `"/web/app.css"`,
	} {
		if !strings.Contains(worker, want) {
			t.Errorf("app-worker.js lacks %s", want)
		}
	}

	var manifest struct {
		Name  string `json:"name"`
		Icons []struct {
			Src, Sizes, Purpose string
		} `json:"icons"`
	}
	if err := json.Unmarshal([]byte(read(t, filepath.Join(out, "manifest.webmanifest"))), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Name != "FluxForge" || len(manifest.Icons) < 4 {
		t.Fatalf("manifest %+v", manifest)
	}
	for _, ic := range manifest.Icons {
		if !strings.HasPrefix(ic.Src, "/web/") {
			t.Errorf("icon %s is not local: the offline cache would fail", ic.Src)
		}
		if _, err := os.Stat(filepath.Join(out, ic.Src)); err != nil {
			t.Errorf("icon %s is missing from the site", ic.Src)
		}
	}

	appJS := read(t, filepath.Join(out, "app.js"))
	if !strings.Contains(appJS, `goappWasmContentLength = "262144"`) || !strings.Contains(appJS, "Loading FluxForge {progress}%") {
		t.Error("app.js lacks the raw wasm size or the loading label")
	}

	gz, err := os.Open(filepath.Join(out, "web", "app.wasm.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, wasm) {
		t.Error("app.wasm.gz does not decode to the wasm")
	}
	br, _ := os.ReadFile(filepath.Join(out, "web", "app.wasm.br"))
	if got, _ := io.ReadAll(brotli.NewReader(bytes.NewReader(br))); !bytes.Equal(got, wasm) {
		t.Error("app.wasm.br does not decode to the wasm")
	}
	if s.Brotli >= s.Raw || s.Gzip >= s.Raw || s.Brotli != int64(len(br)) {
		t.Errorf("sizes %+v", s)
	}
}

// TestWasmExecMatchesGo guards against go-app serving a wasm_exec.js from
// another Go release than the one that built the wasm: the two must agree.
func TestWasmExecMatchesGo(t *testing.T) {
	out := t.TempDir()
	if _, err := generate(config{Out: out, Web: webWith(t, []byte("\x00asm")), BrotliQuality: 1, CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	// The go command's GOROOT, as the Makefile's WASM_EXEC_DIR uses:
	// runtime.GOROOT is where this test binary was built, which need not be
	// the toolchain that builds the site.
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	want := read(t, filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if got := read(t, filepath.Join(out, "wasm_exec.js")); got != want {
		t.Fatal("the site's /wasm_exec.js differs from $(go env GOROOT)/lib/wasm/wasm_exec.js")
	}
}

func TestVersionFollowsContentAndBrotliIsCached(t *testing.T) {
	cache := t.TempDir()
	build := func(wasm []byte) summary {
		t.Helper()
		s, err := generate(config{Out: t.TempDir(), Web: webWith(t, wasm), BrotliQuality: 4, CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := build([]byte("\x00asm one"))
	again := build([]byte("\x00asm one"))
	b := build([]byte("\x00asm two"))
	if a.Version != again.Version || a.Version == b.Version {
		t.Errorf("versions %s, %s, %s: same content must give the same version, new content a new one", a.Version, again.Version, b.Version)
	}
	if a.BrotliCached || !again.BrotliCached || b.BrotliCached {
		t.Errorf("brotli cache hits %v %v %v, want false true false", a.BrotliCached, again.BrotliCached, b.BrotliCached)
	}
}

func TestCSPAllowsAProxyHostedApart(t *testing.T) {
	meta := cspMeta("https://proxy.example.com")
	if !strings.Contains(meta, "connect-src 'self' https://proxy.example.com;") {
		t.Fatalf("CSP %s does not let the app call the proxy", meta)
	}
	if !strings.Contains(cspMeta(""), "connect-src 'self';") {
		t.Fatalf("CSP without a separate proxy: %s", cspMeta(""))
	}
}

// A build replaces the previous one whole, by renaming: nothing of the old
// build is left to be served beside the new one (as a stale app.wasm.br
// next to a new service worker was, while brotli ran).
func TestBuildReplacesThePreviousOneWhole(t *testing.T) {
	out := filepath.Join(t.TempDir(), "site")
	cfg := config{Out: out, Web: webWith(t, []byte("\x00asm")), BrotliQuality: 1, CacheDir: t.TempDir()}
	if _, err := generate(cfg); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(out, "web", "app.wasm.old.br")
	if err := os.WriteFile(stale, []byte("the previous build's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := generate(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file of the previous build is still there: %v", err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("the site directory: %v, mode %v; want 0755 for a static host", err, st.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".site.new-*")); len(left) > 0 || exists(out+".old") {
		t.Errorf("build directories left behind: %v", left)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
