// Package generate is the Generate tab.
package generate

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
)

// Page is the Generate tab; the shell renders it with New.
type Page struct {
	app.Compo
}

// New returns the tab's root component for the shell to render.
func New(*container.Container) app.Composer { return &Page{} }

func (p *Page) Render() app.UI {
	return app.Section().ID("tab-generate").Class("tab").Body(
		app.H2().Text("Generate"),
		app.P().Text("Make images with a finetuned model."),
	)
}
