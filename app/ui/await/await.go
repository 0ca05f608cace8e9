// Package await waits, off the UI goroutine, for the browser's promises and
// callback APIs, with their failures as errors: go-app's Value.Then has no
// rejection path, so a failed promise would hang forever.
package await

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// Promise waits for p to settle.
func Promise(p app.Value) (app.Value, error) {
	return Callbacks(func(ok, ko app.Value) { p.Call("then", ok, ko) })
}
