package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/ui"
)

type config struct {
	Out, Web      string
	ConnectSrc    string
	BrotliQuality int
	CacheDir      string
}

// summary is what a build produced.
type summary struct {
	Version           string
	Raw, Gzip, Brotli int64
	BrotliCached      bool
}

func generate(cfg config) (summary, error) {
	wasm, err := os.ReadFile(filepath.Join(cfg.Web, "app.wasm"))
	if err != nil {
		return summary{}, fmt.Errorf("read the wasm (run make wasm first): %w", err)
	}
	h := handler(int64(len(wasm)), cfg.ConnectSrc)
	if h.Version, err = versionOf(cfg.Web, describe(h)); err != nil {
		return summary{}, err
	}
	ui.Routes(container.New(container.Options{}))
	// The site is built beside cfg.Out and renamed into place. Written in
	// place, a proxy serving it would hand out the new service worker with
	// the old app.wasm.br for the minutes brotli takes, and clients that
	// updated then would keep the old wasm.
	final := cfg.Out
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return summary{}, fmt.Errorf("create %s: %w", filepath.Dir(final), err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), "."+filepath.Base(final)+".new-")
	if err != nil {
		return summary{}, fmt.Errorf("create a build directory beside %s: %w", final, err)
	}
	defer os.RemoveAll(tmp) // gone once renamed; left over only on failure
	if err := os.Chmod(tmp, 0o755); err != nil {
		return summary{}, fmt.Errorf("open %s to readers: %w", tmp, err)
	}
	cfg.Out = tmp
	if err := app.GenerateStaticWebsite(cfg.Out, h, ui.Paths()...); err != nil {
		return summary{}, fmt.Errorf("generate pages: %w", err)
	}
	if err := copyDir(cfg.Web, filepath.Join(cfg.Out, "web")); err != nil {
		return summary{}, err
	}
	s := summary{Version: h.Version, Raw: int64(len(wasm))}
	dst := filepath.Join(cfg.Out, "web", "app.wasm")
	if s.Gzip, err = writeGzip(dst+".gz", wasm); err != nil {
		return summary{}, err
	}
	if s.Brotli, s.BrotliCached, err = writeBrotli(dst+".br", wasm, cfg.BrotliQuality, cfg.CacheDir); err != nil {
		return summary{}, err
	}
	if err := swapIn(tmp, final); err != nil {
		return summary{}, err
	}
	return s, nil
}

// swapIn puts the built directory at final, in place of the previous build.
func swapIn(built, final string) error {
	old := final + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("clear %s: %w", old, err)
	}
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("move the previous build aside: %w", err)
	}
	if err := os.Rename(built, final); err != nil {
		return fmt.Errorf("put the build in place: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove the previous build: %w", err)
	}
	return nil
}

// handler describes the PWA. Every resource is local: the worker's cache.addAll
// is all-or-nothing, so one remote icon would leave the app without offline mode.
func handler(wasmSize int64, connectSrc string) *app.Handler {
	return &app.Handler{
		Name:        "FluxForge",
		ShortName:   "FluxForge",
		Title:       "FluxForge",
		Description: "Finetune FLUX Pro models on Black Forest Labs' API and generate images with them.",
		Icon: app.Icon{
			Default:  "/web/icon-192.png",
			Large:    "/web/icon-512.png",
			SVG:      "/web/icon.svg",
			Maskable: "/web/icon-maskable.png",
		},
		BackgroundColor: "#111318",
		ThemeColor:      "#111318",
		LoadingLabel:    "Loading FluxForge {progress}%",
		Lang:            "en",
		Styles:          []string{"/web/app.css"},
		RawHeaders:      []string{cspMeta(connectSrc)},
		// The wasm is served compressed and the browser counts decoded bytes:
		// the progress label needs the raw size.
		WasmContentLength:     strconv.FormatInt(wasmSize, 10),
		ServiceWorkerTemplate: patchedWorker(),
		CacheableResources:    slices.DeleteFunc(ui.Paths(), func(p string) bool { return p == "/" }),
	}
}

// describe lists what the handler puts into pages, manifest and worker.
func describe(h *app.Handler) string {
	return fmt.Sprintf("%q %q %q %q %q %q %q %+v %q %q %q", h.Name, h.ShortName, h.Title, h.Description,
		h.BackgroundColor, h.ThemeColor, h.LoadingLabel, h.Icon, h.Styles, h.RawHeaders, h.CacheableResources) +
		h.ServiceWorkerTemplate
}

// cspMeta is the policy static hosts apply; the proxy sends the same as a
// header. Images may be data: and blob: URLs (thumbnails, the gallery).
func cspMeta(connectSrc string) string {
	connect := strings.TrimSpace("'self' " + connectSrc)
	policy := "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob:; connect-src " + connect + "; manifest-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'self'"
	return `<meta http-equiv="Content-Security-Policy" content="` + policy + `">`
}

// versionOf hashes every file under web/ (the wasm included, compressed
// copies excluded) and the handler's description (worker, headers, icons):
// the version changes exactly when what clients load changes.
func versionOf(web, description string) (string, error) {
	h := sha256.New()
	io.WriteString(h, description)
	err := filepath.WalkDir(web, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".br") || strings.HasSuffix(p, ".gz") {
			return err
		}
		rel, _ := filepath.Rel(web, p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", web, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func copyDir(src, dst string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(p, ".br") || strings.HasSuffix(p, ".gz") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func writeGzip(path string, data []byte) (int64, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(data); err != nil {
		return 0, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("gzip: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	return int64(buf.Len()), nil
}

// writeBrotli compresses data, reusing an earlier result for the same bytes
// and quality from the cache directory.
func writeBrotli(path string, data []byte, quality int, cacheDir string) (int64, bool, error) {
	sum := sha256.Sum256(data)
	cached := filepath.Join(cacheDir, "fluxforge-sitegen", fmt.Sprintf("%x-q%d.br", sum[:16], quality))
	if br, err := os.ReadFile(cached); err == nil {
		if err := os.WriteFile(path, br, 0o644); err != nil {
			return 0, false, fmt.Errorf("write %s: %w", path, err)
		}
		return int64(len(br)), true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("read brotli cache: %w", err)
	}
	var buf bytes.Buffer
	bw := brotli.NewWriterLevel(&buf, quality)
	if _, err := bw.Write(data); err != nil {
		return 0, false, fmt.Errorf("brotli: %w", err)
	}
	if err := bw.Close(); err != nil {
		return 0, false, fmt.Errorf("brotli: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return 0, false, fmt.Errorf("write %s: %w", path, err)
	}
	// A cache that cannot be written only costs time on the next build.
	if os.MkdirAll(filepath.Dir(cached), 0o755) == nil {
		_ = os.WriteFile(cached, buf.Bytes(), 0o644)
	}
	return int64(buf.Len()), false, nil
}
