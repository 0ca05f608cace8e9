package models

import (
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// frameNudge is how soon after a dispatch a timer fires to get the frame drawn.
const frameNudge = 30 * time.Millisecond

// dispatch runs fn on the UI goroutine through the component's own context.
// Measured in headless Chromium: when a goroutine dispatches while the page is
// otherwise idle, go-app's frame ticker is not woken and the new state stays
// undrawn until the next browser event; any timer firing shortly after wakes
// the runtime, which then runs the overdue frame.
func (p *Page) dispatch(fn func(app.Context)) {
	p.ctx.Dispatch(fn)
	time.AfterFunc(frameNudge, func() {})
}
