//go:build !js

package core

import "context"

func (a *API) upload(ctx context.Context, name string, body []byte, progress func(sent, total int64), out any) error {
	return a.uploadHTTP(ctx, name, body, progress, out)
}

// pageOrigin is empty outside a browser: native callers must set BaseURL.
func pageOrigin() string { return "" }
