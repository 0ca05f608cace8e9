// Package uitest holds what the tabs' component tests share.
package uitest

import (
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// Render mounts c in a fresh go-app test engine (server mode), runs what
// the mount dispatched, and returns c's HTML.
func Render(t testing.TB, c app.Composer) string {
	t.Helper()
	e := app.NewTestEngine()
	if err := e.Load(c); err != nil {
		t.Fatal(err)
	}
	e.ConsumeAll()
	return app.HTMLString(c)
}
