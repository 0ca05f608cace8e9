// Package frame gets state changed from a goroutine drawn without waiting for
// the next browser event.
package frame

import (
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// nudge is how soon after a dispatch a timer fires to get the frame drawn.
const nudge = 30 * time.Millisecond

// Dispatch runs fn on the UI goroutine through ctx, a component's own context.
// Measured in headless Chromium: when a goroutine dispatches while the page is
// otherwise idle, go-app's frame ticker is not woken and the new state stays
// undrawn until the next browser event; any timer firing shortly after wakes
// the runtime, which then runs the overdue frame.
func Dispatch(ctx app.Context, fn func(app.Context)) {
	ctx.Dispatch(fn)
	time.AfterFunc(nudge, func() {})
}
