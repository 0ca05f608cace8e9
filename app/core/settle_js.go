//go:build js

package core

import (
	"context"
	"syscall/js"
)

// Settle hands a success and a failure callback to start, which passes them
// to the browser (a promise's then, or a callback API such as
// FileSystemEntry.file), and waits for the first of them to be called, or
// for ctx to end. The failure's argument becomes the error.
//
// It blocks, so it must run off the goroutine that serves JS callbacks
// (in go-app, inside ctx.Async): the callbacks could never run otherwise.
func Settle(ctx context.Context, start func(resolve, reject js.Func)) (js.Value, error) {
	res := make(chan js.Value, 1)
	rej := make(chan error, 1)
	ok := js.FuncOf(func(_ js.Value, a []js.Value) any { res <- arg0(a); return nil })
	ko := js.FuncOf(func(_ js.Value, a []js.Value) any { rej <- jsError(arg0(a)); return nil })
	start(ok, ko)
	select {
	case v := <-res:
		ok.Release()
		ko.Release()
		return v, nil
	case err := <-rej:
		ok.Release()
		ko.Release()
		return js.Undefined(), err
	case <-ctx.Done():
		// The browser may still call back: the two functions stay alive,
		// since calling a released one throws.
		return js.Undefined(), ctx.Err()
	}
}
