//go:build js

package await

import (
	"context"
	"syscall/js"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/core"
)

// Callbacks waits for one of the two callbacks start hands to the browser
// (see core.Settle), in go-app's values. Reading and decoding a file is not
// cancelled midway, so no context bounds it.
func Callbacks(start func(ok, ko app.Value)) (app.Value, error) {
	v, err := core.Settle(context.Background(), func(ok, ko js.Func) {
		start(app.ValueOf(ok.Value), app.ValueOf(ko.Value))
	})
	if err != nil {
		return nil, err
	}
	return app.ValueOf(v), nil
}
