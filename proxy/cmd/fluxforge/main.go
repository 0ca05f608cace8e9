// Command fluxforge serves the FluxForge PWA and the BFL API proxy that keeps
// the key; with no BFL_API_KEY it simulates BFL in-process. Configuration is
// the environment (see the README); SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/fluxforge/fluxforge/proxy"
)

func main() {
	// In live mode the proxy only moves bytes. One scheduler thread spares
	// each small request the cross-thread hand-offs that cost about a fifth
	// of its latency on a 2-core machine (measured against the same binary
	// with two). The simulator renders images, so simulated mode keeps every
	// core; a GOMAXPROCS in the environment always wins.
	if os.Getenv("BFL_API_KEY") != "" && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := proxy.Run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxforge:", err)
		os.Exit(1)
	}
}
