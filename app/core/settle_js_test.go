//go:build js

package core

import (
	"context"
	"errors"
	"strings"
	"syscall/js"
	"testing"
	"time"
)

// These run under Node as well as in Chromium: promises and timers are
// plain JavaScript.

func TestSettleWaitsForEitherCallback(t *testing.T) {
	ctx := browserCtx(t)
	promise := js.Global().Get("Promise")
	v, err := Settle(ctx, func(ok, ko js.Func) { promise.Call("resolve", 42).Call("then", ok, ko) })
	if err != nil || v.Int() != 42 {
		t.Fatalf("resolved promise: %v, %v", v, err)
	}
	refusal := js.Global().Get("Error").New("refused on purpose")
	if _, err := Settle(ctx, func(ok, ko js.Func) { promise.Call("reject", refusal).Call("then", ok, ko) }); err == nil ||
		!strings.Contains(err.Error(), "refused on purpose") {
		t.Fatalf("rejected promise: %v", err)
	}
	// A callback API that answers later, from the event loop.
	v, err = Settle(ctx, func(ok, ko js.Func) { js.Global().Call("setTimeout", ok, 1, "later") })
	if err != nil || v.String() != "later" {
		t.Fatalf("callback API: %v, %v", v, err)
	}
}

func TestSettleStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(browserCtx(t), 50*time.Millisecond)
	defer cancel()
	never := js.Global().Get("Promise").New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	if _, err := Settle(ctx, func(ok, ko js.Func) { never.Call("then", ok, ko) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never-settling promise: %v, want the context's deadline", err)
	}
}
