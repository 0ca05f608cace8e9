//go:build !js

package finetune

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// settle has no browser to wait for outside js builds (server pre-render, tests).
func settle(func(ok, ko app.Value)) (app.Value, error) { return nil, errNoBrowser }
