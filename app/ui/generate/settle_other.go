//go:build !js

package generate

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// await has no browser to wait for outside js builds (server pre-render, tests).
func await(app.Value) (app.Value, error) { return nil, errNoBrowser }
