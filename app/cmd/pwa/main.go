// Command pwa is the FluxForge browser app, compiled to web/app.wasm. It
// imports client code only: the site generator that pre-renders the pages
// is a separate native program (build/sitegen), which keeps the wasm small.
package main

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/ui"
)

func main() {
	ui.Routes(container.New(container.Options{}))
	app.RunWhenOnBrowser()
}
