// Package ui is the app's shell: the header with mode and credits, the tabs,
// toasts, settings, install and update prompts. The tabs themselves live in
// sub-packages (finetune, models, generate) and get their services from the
// container.
package ui

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/ui/finetune"
	"github.com/fluxforge/fluxforge/app/ui/generate"
	"github.com/fluxforge/fluxforge/app/ui/models"
)

// SettingsPath is the settings page.
const SettingsPath = "/settings"

// tab is one of the shell's main sections.
type tab struct {
	path  string
	title string
	desc  string
	page  func(*container.Container) app.Composer
}

// tabs lists the tabs in display order; "/" opens the first.
func tabs() []tab {
	return []tab{
		{path: "/finetune", title: "Finetune", desc: "Train a FLUX Pro finetune from your own images.", page: finetune.New},
		{path: "/models", title: "Models", desc: "Browse, inspect and delete the finetunes of your account.", page: models.New},
		{path: "/generate", title: "Generate", desc: "Make images with your finetuned models and keep them in a gallery.", page: generate.New},
	}
}

// Paths lists every routed page: the site generator pre-renders each one and
// the service worker caches them, so deep links work offline too.
func Paths() []string {
	paths := []string{"/"}
	for _, t := range tabs() {
		paths = append(paths, t.path)
	}
	return append(paths, SettingsPath)
}

// Routes registers every page with go-app. The wasm main and the site
// generator both call it, so what is pre-rendered is what the app routes.
func Routes(c *container.Container) {
	for _, p := range Paths() {
		app.Route(p, func() app.Composer { return newShell(c) })
	}
}

// startTab is the tab "/" shows: the configured one, else the first.
func startTab(c *container.Container) tab {
	return tabFor("/" + c.Config().String(core.KeyStartTab))
}

// tabFor returns the tab a path shows; unknown paths show the first.
func tabFor(path string) tab {
	all := tabs()
	for _, t := range all {
		if t.path == path {
			return t
		}
	}
	return all[0]
}
