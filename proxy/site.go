package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
)

// contentSecurityPolicy is the policy the PWA was tested under: wasm may
// compile, nothing loads from elsewhere, and no page may frame it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"

// site serves the generated PWA from SITE_DIR: "/" is index.html, "/x" is
// x.html when the generator wrote one and index.html otherwise (the app
// routes deep links itself), and /web/app.wasm comes precompressed.
type site struct {
	root    *os.Root // nil when SITE_DIR is missing
	missing string   // why root is nil, shown on "/" and in the banner
}

func newSite(dir string) *site {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return &site{missing: fmt.Sprintf("the PWA is not built: SITE_DIR=%s cannot be opened (%v); run make build, then restart", dir, errors.Unwrap(err))}
	}
	return &site{root: root}
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
	if s.root == nil {
		h.Set("Retry-After", "60")
		http.Error(w, "FluxForge: "+s.missing+". The API under /api/ works.", http.StatusServiceUnavailable)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, ".") {
			http.NotFound(w, r)
			return
		}
	}
	if p == "/web/app.wasm" {
		s.serveWasm(w, r)
		return
	}
	name := strings.TrimPrefix(p, "/")
	if name == "" {
		name = "index.html"
	}
	if s.serveFile(w, r, name, "") {
		return
	}
	if path.Ext(name) != "" {
		http.NotFound(w, r)
		return
	}
	if !s.serveFile(w, r, name+".html", "") && !s.serveFile(w, r, "index.html", "") {
		http.NotFound(w, r)
	}
}

// serveWasm picks app.wasm.br or .gz by Accept-Encoding, else the raw file.
func (s *site) serveWasm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Accept-Encoding")
	ae := r.Header.Get("Accept-Encoding")
	for _, enc := range []struct{ name, suffix string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if accepts(ae, enc.name) && s.serveFile(w, r, "web/app.wasm"+enc.suffix, enc.name) {
			return
		}
	}
	if !s.serveFile(w, r, "web/app.wasm", "") {
		http.NotFound(w, r)
	}
}

// serveFile serves name if it is a regular file, and reports whether it did.
// Every app file is revalidated (no-cache + ETag): a new deploy must reach
// clients on their next load, and an unchanged one costs a 304.
func (s *site) serveFile(w http.ResponseWriter, r *http.Request, name, encoding string) bool {
	f, err := s.root.Open(name)
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
	}
	if ct := contentType(ext); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+strconv.FormatInt(st.Size(), 36)+"-"+strconv.FormatInt(st.ModTime().UnixNano(), 36)+encoding+`"`)
	http.ServeContent(w, r, name, st.ModTime(), f)
	return true
}

// accepts reports whether an Accept-Encoding value allows enc (q > 0).
func accepts(header, enc string) bool {
	for part := range strings.SplitSeq(header, ",") {
		token, params, _ := strings.Cut(part, ";")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(token, enc) && token != "*" {
			continue
		}
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		return q > 0
	}
	return false
}

// close releases the site directory.
func (s *site) close() {
	if s.root != nil {
		_ = s.root.Close()
	}
}
