package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// fakeWasm does not compress, so its .br and .gz copies outgrow net/http's
// response buffer as the real ones do, and go out as they would.
var fakeWasm = func() []byte {
	b := append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, 64<<10)...)
	_, _ = rand.NewChaCha8([32]byte{}).Read(b[8:])
	return b
}()

// writeSite lays out a generated site as sitegen does.
func writeSite(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var gz, br bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(fakeWasm)
	_ = zw.Close()
	bw := brotli.NewWriter(&br)
	_, _ = bw.Write(fakeWasm)
	_ = bw.Close()
	files := map[string][]byte{
		"index.html":           []byte("<html>index</html>"),
		"generate.html":        []byte("<html>generate</html>"),
		"app.js":               []byte("console.log(1)"),
		"manifest.webmanifest": []byte("{}"),
		"web/app.wasm":         fakeWasm,
		"web/app.wasm.gz":      gz.Bytes(),
		"web/app.wasm.br":      br.Bytes(),
		"web/icon.png":         tinyPNG,
		".secret":              []byte("hidden"),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSitePages(t *testing.T) {
	p := start(t, map[string]string{"SITE_DIR": writeSite(t)})
	for _, c := range []struct {
		path, want, ctype string
		status            int
	}{
		{"/", "<html>index</html>", "text/html", 200},
		{"/generate", "<html>generate</html>", "text/html", 200},
		{"/finetune", "<html>index</html>", "text/html", 200}, // no finetune.html: the app routes it
		{"/models/abc", "<html>index</html>", "text/html", 200},
		{"/app.js", "console.log(1)", "text/javascript", 200},
		{"/manifest.webmanifest", "{}", "application/manifest+json", 200},
		{"/web/icon.png", string(tinyPNG), "image/png", 200},
		{"/missing.js", "", "", 404},
		{"/.secret", "", "", 404},
		{"/web/../.secret", "", "", 404},
	} {
		resp, body := do(t, "GET", p.base+c.path, nil, nil)
		if resp.StatusCode != c.status || (c.status == 200 && body != c.want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q %s", c.path, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
		if c.status != 200 {
			continue
		}
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "frame-ancestors 'none'", "connect-src 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %s", c.path, csp, d)
			}
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" {
			t.Errorf("%s: headers %v", c.path, h)
		}
		resp2, _ := do(t, "GET", p.base+c.path, nil, http.Header{"If-None-Match": {h.Get("ETag")}})
		if resp2.StatusCode != http.StatusNotModified {
			t.Errorf("%s: revalidation with its ETag gave %d, want 304", c.path, resp2.StatusCode)
		}
	}
	if resp, _ := do(t, "POST", p.base+"/", nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", resp.StatusCode)
	}
}

func TestSiteServesPrecompressedWasm(t *testing.T) {
	p := start(t, map[string]string{"SITE_DIR": writeSite(t)})
	// DisableCompression so the client neither asks for gzip nor decodes it.
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: client().Timeout}
	for _, tc := range []struct{ accept, encoding string }{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip", "gzip"},
		{"br;q=0, gzip;q=0.8", "gzip"},
		{"*, br;q=0", "gzip"}, // the encoding's own entry decides over "*"
		{"br;v=1;q=0, gzip", "gzip"},
		{"gzip;q=0, *", "br"},
		{"", ""},
		{"identity", ""},
	} {
		req, _ := http.NewRequest("GET", p.base+"/web/app.wasm", nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Encoding", tc.accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Encoding") != tc.encoding || h.Get("Content-Type") != "application/wasm" || h.Get("Vary") != "Accept-Encoding" || h.Get("Cache-Control") != "no-cache" {
			t.Errorf("Accept-Encoding %q: %d %v", tc.accept, resp.StatusCode, h)
			continue
		}
		// A length lets the browser and any cache between see the size;
		// without it the answer went chunked.
		if resp.ContentLength != int64(len(raw)) || len(resp.TransferEncoding) > 0 {
			t.Errorf("Accept-Encoding %q: Content-Length %d for %d bytes, transfer encoding %v",
				tc.accept, resp.ContentLength, len(raw), resp.TransferEncoding)
		}
		var decoded []byte
		switch tc.encoding {
		case "br":
			decoded, err = io.ReadAll(brotli.NewReader(bytes.NewReader(raw)))
		case "gzip":
			zr, zerr := gzip.NewReader(bytes.NewReader(raw))
			if zerr != nil {
				t.Fatal(zerr)
			}
			decoded, err = io.ReadAll(zr)
		default:
			decoded = raw
		}
		if err != nil || !bytes.Equal(decoded, fakeWasm) {
			t.Errorf("Accept-Encoding %q: body does not decode to the wasm (%v)", tc.accept, err)
		}
	}
}

// A rebuilt or swapped site directory is what the next request gets, with
// no restart: a deploy that renames a new build into place, a make clean
// and make site, or a first build after the proxy started.
// A range of the precompressed file is a range of its bytes, with the
// length of the part; HEAD gives the whole file's length.
func TestSitePrecompressedRangeAndHead(t *testing.T) {
	dir := writeSite(t)
	br, err := os.ReadFile(filepath.Join(dir, "web/app.wasm.br"))
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, map[string]string{"SITE_DIR": dir})
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: client().Timeout}
	req, _ := http.NewRequest("GET", p.base+"/web/app.wasm", nil)
	req.Header.Set("Accept-Encoding", "br")
	req.Header.Set("Range", "bytes=0-3")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, br[:4]) || resp.ContentLength != 4 {
		t.Errorf("range 0-3 of the br file: %d, %d bytes, Content-Length %d", resp.StatusCode, len(part), resp.ContentLength)
	}
	req, _ = http.NewRequest("HEAD", p.base+"/web/app.wasm", nil)
	req.Header.Set("Accept-Encoding", "br")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(br)) {
		t.Errorf("HEAD with br: %d, Content-Length %d, want %d", resp.StatusCode, resp.ContentLength, len(br))
	}
}

func TestSiteFollowsTheDirectoryAsItChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	p := start(t, map[string]string{"SITE_DIR": dir})
	page := func(want int, body string) {
		t.Helper()
		resp, got := do(t, "GET", p.base+"/", nil, nil)
		if resp.StatusCode != want || !strings.Contains(got, body) {
			t.Fatalf("GET /: %d %q; want %d with %q", resp.StatusCode, got, want, body)
		}
	}
	page(http.StatusServiceUnavailable, "not built")
	build := func(index string) {
		t.Helper()
		tmp := dir + ".new"
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "index.html"), []byte(index), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	build("release one")
	page(http.StatusOK, "release one")
	build("release two")
	page(http.StatusOK, "release two")
	if err := os.WriteFile(filepath.Join(dir, "page.html"), []byte("a page"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "index.html")); err != nil {
		t.Fatal(err)
	}
	page(http.StatusServiceUnavailable, "no index.html")
	// Its other files are still served: the e2e suite serves a test page
	// this way.
	if resp, body := do(t, "GET", p.base+"/page", nil, nil); resp.StatusCode != http.StatusOK || body != "a page" {
		t.Errorf("GET /page without index.html: %d %q", resp.StatusCode, body)
	}
}

func TestMissingSiteSaysSoAndAPIStillWorks(t *testing.T) {
	p := start(t, map[string]string{"SITE_DIR": filepath.Join(t.TempDir(), "not-built")})
	for _, path := range []string{"/", "/generate", "/web/app.wasm"} {
		resp, body := do(t, "GET", p.base+path, nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "not built") || !strings.Contains(body, "make build") {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	if !strings.Contains(p.stdout.String(), "not built") {
		t.Errorf("the banner should say the PWA is not built: %s", p.stdout.String())
	}
	if resp, body := do(t, "GET", p.base+"/api/v1/credits", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "credits") {
		t.Errorf("/api/v1/credits with no site: %d %s", resp.StatusCode, body)
	}
}

// A new version of a small file is fetched even when it has the old one's
// size and modification time, as deploys that keep times (cp -p, rsync -a)
// leave it: the service worker changes by its version string only, and a
// 304 would keep every client on the old release.
func TestSiteTagsSmallFilesByContent(t *testing.T) {
	dir := writeSite(t)
	worker := filepath.Join(dir, "app-worker.js")
	if err := os.WriteFile(worker, []byte(`const cacheName = "app-aaaaaaaaaaaa";`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(worker)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, map[string]string{"SITE_DIR": dir})
	resp, _ := do(t, "GET", p.base+"/app-worker.js", nil, nil)
	old := resp.Header.Get("ETag")
	if again, _ := do(t, "GET", p.base+"/app-worker.js", nil, http.Header{"If-None-Match": {old}}); again.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged file revalidated with %d, want 304", again.StatusCode)
	}
	if err := os.WriteFile(worker, []byte(`const cacheName = "app-bbbbbbbbbbbb";`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(worker, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "GET", p.base+"/app-worker.js", nil, http.Header{"If-None-Match": {old}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "bbbbbbbbbbbb") {
		t.Errorf("new worker, same size and time: %d %q; want 200 with the new version", resp.StatusCode, body)
	}
}
