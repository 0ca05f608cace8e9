//go:build js

package generate

import (
	"context"
	"syscall/js"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/core"
)

// await waits for a promise (see core.Settle) and returns its rejection as an
// error: go-app's Value.Then has no rejection path, so a failed promise would
// hang. Reading a chosen file is not cancelled midway, so no context bounds it.
func await(promise app.Value) (app.Value, error) {
	v, err := core.Settle(context.Background(), func(ok, ko js.Func) {
		promise.Call("then", app.ValueOf(ok.Value), app.ValueOf(ko.Value))
	})
	if err != nil {
		return nil, err
	}
	return app.ValueOf(v), nil
}
