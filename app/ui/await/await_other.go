//go:build !js

package await

import (
	"errors"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// errNoBrowser is the answer where there is no DOM (server pre-render, tests).
var errNoBrowser = errors.New("not running in a browser")

// Callbacks has no browser to wait for outside js builds.
func Callbacks(func(ok, ko app.Value)) (app.Value, error) { return nil, errNoBrowser }
