package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// contentSecurityPolicy is the policy the PWA was tested under: wasm may
// compile, nothing loads from elsewhere, and no page may frame it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"

// site serves the generated PWA from SITE_DIR: "/" is index.html, "/x" is
// x.html when the generator wrote one and index.html otherwise (the app
// routes deep links itself), and /web/app.wasm comes precompressed.
//
// The directory is opened for each request, not once: a rebuild (make
// clean, make site) or a deploy that swaps the directory must be what the
// next request sees, or clients would keep the old release, or 404s once
// it is deleted.
type site struct {
	dir string
}

func newSite(dir string) *site { return &site{dir: dir} }

// open gives the site's directory, or says why it cannot be served.
func (s *site) open() (*os.Root, string) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, fmt.Sprintf("the PWA is not built: SITE_DIR=%s cannot be opened (%v); run make build", s.dir, errors.Unwrap(err))
	}
	return root, ""
}

// noIndex is why a site directory without index.html cannot serve the app.
func (s *site) noIndex() string {
	return fmt.Sprintf("the PWA is not built: SITE_DIR=%s has no index.html; run make build", s.dir)
}

// missing says why the app cannot be served now, or "" if it can.
func (s *site) missing() string {
	root, why := s.open()
	if root == nil {
		return why
	}
	defer root.Close()
	if st, err := root.Stat("index.html"); err != nil || !st.Mode().IsRegular() {
		return s.noIndex()
	}
	return ""
}

// notBuilt answers for an app that cannot be served; the API still works.
func notBuilt(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", "60")
	http.Error(w, "FluxForge: "+why+". The API under /api/ works.", http.StatusServiceUnavailable)
}

// contentType names the types the generated site uses; Go's own table
// lacks .webmanifest and varies by machine for the rest.
func contentType(ext string) string {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".wasm":
		return "application/wasm"
	case ".webmanifest":
		return "application/manifest+json"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return ""
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	root, why := s.open()
	if root == nil {
		notBuilt(w, why)
		return
	}
	defer root.Close()
	p := path.Clean("/" + r.URL.Path)
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, ".") {
			http.NotFound(w, r)
			return
		}
	}
	if p == "/web/app.wasm" {
		serveWasm(w, r, root)
		return
	}
	name := strings.TrimPrefix(p, "/")
	if name == "" {
		name = "index.html"
	}
	if serveFile(w, r, root, name, "") {
		return
	}
	if name == "index.html" {
		notBuilt(w, s.noIndex())
		return
	}
	if path.Ext(name) != "" {
		http.NotFound(w, r)
		return
	}
	if !serveFile(w, r, root, name+".html", "") && !serveFile(w, r, root, "index.html", "") {
		notBuilt(w, s.noIndex())
	}
}

// serveWasm picks app.wasm.br or .gz by Accept-Encoding, else the raw file.
func serveWasm(w http.ResponseWriter, r *http.Request, root *os.Root) {
	w.Header().Set("Vary", "Accept-Encoding")
	ae := r.Header.Get("Accept-Encoding")
	for _, enc := range []struct{ name, suffix string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if accepts(ae, enc.name) && serveFile(w, r, root, "web/app.wasm"+enc.suffix, enc.name) {
			return
		}
	}
	if !serveFile(w, r, root, "web/app.wasm", "") {
		http.NotFound(w, r)
	}
}

// serveFile serves name if it is a regular file, and reports whether it did.
// Every app file is revalidated (no-cache + ETag): a new deploy must reach
// clients on their next load, and an unchanged one costs a 304.
func serveFile(w http.ResponseWriter, r *http.Request, root *os.Root, name, encoding string) bool {
	f, err := root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	h := w.Header()
	ext := path.Ext(name)
	if encoding != "" {
		h.Set("Content-Encoding", encoding)
		ext = path.Ext(strings.TrimSuffix(name, path.Ext(name)))
		// ServeContent leaves the length out of an encoded answer, which
		// then goes chunked; the whole file's length is right unless a
		// range is asked for.
		if r.Header.Get("Range") == "" {
			h.Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		}
	}
	if ct := contentType(ext); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Cache-Control", "no-cache")
	// The app's small files (pages, app.js, the service worker) change by a
	// few characters between versions, often at the same size, and some
	// deploys keep modification times (cp -p, rsync -a, reproducible
	// builds): their tag is a hash of their content, or a new worker would
	// be answered 304 and never install. Large files (the wasm) are tagged
	// by size and time; they change size when they change.
	var content io.ReadSeeker = f
	modTime := st.ModTime()
	tag := strconv.FormatInt(st.Size(), 36) + "-" + strconv.FormatInt(modTime.UnixNano(), 36)
	if st.Size() <= hashedUpTo {
		data, err := io.ReadAll(f)
		if err != nil {
			return false
		}
		sum := sha256.Sum256(data)
		tag, content, modTime = base64.RawURLEncoding.EncodeToString(sum[:12]), bytes.NewReader(data), time.Time{}
	}
	h.Set("ETag", `"`+tag+encoding+`"`)
	http.ServeContent(w, r, name, modTime, content)
	return true
}

// hashedUpTo is the largest file whose ETag is a hash of its content.
const hashedUpTo = 1 << 20

// accepts reports whether an Accept-Encoding value allows enc (q > 0). The
// encoding's own entry decides over "*", whatever their order.
func accepts(header, enc string) bool {
	star := -1.0
	for part := range strings.SplitSeq(header, ",") {
		token, params, _ := strings.Cut(part, ";")
		token = strings.TrimSpace(token)
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch {
		case strings.EqualFold(token, enc):
			return q > 0
		case token == "*":
			star = q
		}
	}
	return star > 0
}
