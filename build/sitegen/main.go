// Command sitegen writes the FluxForge PWA as a static site: every routed
// page pre-rendered, the manifest, the patched service worker, the web/
// assets, and the wasm precompressed as .br and .gz. Any static host can
// serve the result; so does the proxy.
//
//	go run ./build/sitegen -out build/site
//
// Brotli at quality 11 takes half a minute for a 12 MB wasm, so the .br is
// cached in the user's cache directory under the wasm's hash: rebuilding with
// an unchanged wasm skips it. FAST=1 uses quality 5 for quick local builds.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sitegen:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sitegen", flag.ContinueOnError)
	out := fs.String("out", "build/site", "directory the site is written to")
	web := fs.String("web", "web", "directory of static assets; must hold app.wasm")
	connect := fs.String("connect-src", getenv("CONNECT_SRC"), "extra origins the app may call (a proxy hosted apart), space separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	quality := 11
	if getenv("FAST") == "1" {
		quality = 5
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		cacheDir = os.TempDir()
	}
	s, err := generate(config{Out: *out, Web: *web, ConnectSrc: *connect, BrotliQuality: quality, CacheDir: cacheDir})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "site %s: version %s, wasm %d B raw, %d B gzip, %d B brotli (q%d%s)\n",
		*out, s.Version, s.Raw, s.Gzip, s.Brotli, quality, map[bool]string{true: ", cached", false: ""}[s.BrotliCached])
	return nil
}
