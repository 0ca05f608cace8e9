//go:build js

package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall/js"
)

// pageOrigin is the origin the PWA was loaded from; the proxy serves both by default.
func pageOrigin() string {
	loc := js.Global().Get("location")
	if loc.Type() != js.TypeObject {
		return ""
	}
	return loc.Get("origin").String()
}

// upload posts through XMLHttpRequest because fetch, and so net/http, reports
// no upload progress. Under Node there is no XMLHttpRequest: net/http it is.
func (a *API) upload(ctx context.Context, name string, body []byte, progress func(sent, total int64), out any) error {
	ctor := js.Global().Get("XMLHttpRequest")
	if ctor.Type() != js.TypeFunction {
		return a.uploadHTTP(ctx, name, body, progress, out)
	}
	req, err := a.newRequest(ctx, http.MethodPost, "/api/v1/"+name, nil, nil, 0)
	if err != nil {
		return &APIError{Endpoint: name, Message: "The proxy URL in Settings is not valid.", Err: err}
	}
	total := int64(len(body))
	xhr := ctor.New()
	xhr.Call("open", http.MethodPost, req.URL.String())
	for k, vs := range req.Header {
		xhr.Call("setRequestHeader", k, vs[0])
	}
	xhr.Call("setRequestHeader", "Content-Type", "application/json")

	// The JS callbacks only hand values over: they must never block, and the
	// caller's progress function runs here, on a Go goroutine.
	sent := make(chan int64, 1)
	ended := make(chan string, 1)
	onProgress := js.FuncOf(func(_ js.Value, args []js.Value) any {
		n := int64(args[0].Get("loaded").Float())
		select {
		case <-sent: // drop a stale value the loop has not taken yet
		default:
		}
		sent <- n
		return nil
	})
	defer onProgress.Release()
	end := func(kind string) js.Func {
		return js.FuncOf(func(js.Value, []js.Value) any {
			select {
			case ended <- kind:
			default:
			}
			return nil
		})
	}
	onLoad, onError, onAbort := end("load"), end("error"), end("abort")
	defer onLoad.Release()
	defer onError.Release()
	defer onAbort.Release()
	xhr.Get("upload").Call("addEventListener", "progress", onProgress)
	xhr.Call("addEventListener", "load", onLoad)
	xhr.Call("addEventListener", "error", onError)
	xhr.Call("addEventListener", "abort", onAbort)

	u8 := js.Global().Get("Uint8Array").New(len(body))
	js.CopyBytesToJS(u8, body)
	xhr.Call("send", u8)

	for {
		select {
		case n := <-sent:
			if progress != nil {
				progress(n, total)
			}
		case kind := <-ended:
			if kind != "load" {
				return networkError(name, fmt.Errorf("upload %s", kind))
			}
			if progress != nil {
				progress(total, total)
			}
			return xhrResult(name, xhr, out)
		case <-ctx.Done():
			xhr.Call("abort")
			return networkError(name, ctx.Err())
		}
	}
}

// xhrResult maps a finished XMLHttpRequest onto an http.Response so both
// transports share one error mapping and decoding.
func xhrResult(name string, xhr js.Value, out any) error {
	status := xhr.Get("status").Int()
	if status == 0 {
		return networkError(name, errors.New("upload got no answer"))
	}
	res := &http.Response{
		StatusCode: status,
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader(xhr.Get("responseText").String())),
	}
	// errorFromResponse reads these headers; an XHR exposes them one by one.
	for _, h := range []string{"Retry-After", notSentHeader, requestIDHeader} {
		if v := xhr.Call("getResponseHeader", h); v.Type() == js.TypeString {
			res.Header.Set(h, v.String())
		}
	}
	if status/100 != 2 {
		return errorFromResponse(name, res)
	}
	return decodeBody(name, res, out)
}
