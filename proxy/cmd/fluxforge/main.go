// Command fluxforge serves the FluxForge PWA and the BFL API proxy that keeps
// the key; with no BFL_API_KEY it simulates BFL in-process. Configuration is
// the environment (see the README); SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fluxforge/fluxforge/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := proxy.Run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxforge:", err)
		os.Exit(1)
	}
}
