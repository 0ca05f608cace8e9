// Package models is the Models tab.
package models

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
)

// Page is the Models tab; the shell renders it with New.
type Page struct {
	app.Compo
}

// New returns the tab's root component for the shell to render.
func New(*container.Container) app.Composer { return &Page{} }

func (p *Page) Render() app.UI {
	return app.Section().ID("tab-models").Class("tab").Body(
		app.H2().Text("Models"),
		app.P().Text("Every finetune of your account."),
	)
}
