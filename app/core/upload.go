package core

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// uploadHTTP posts body through net/http, reporting progress as the
// transport reads the body. The browser build uses it where
// XMLHttpRequest does not exist (Node).
func (a *API) uploadHTTP(ctx context.Context, name string, body []byte, progress func(sent, total int64), out any) error {
	var r io.Reader = bytes.NewReader(body)
	if progress != nil {
		r = &countingReader{r: r, total: int64(len(body)), progress: progress}
	}
	res, err := a.do(ctx, name, http.MethodPost, "/api/v1/"+name, nil, r, int64(len(body)))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return decodeBody(name, res, out)
}

type countingReader struct {
	r        io.Reader
	sent     int64
	total    int64
	progress func(sent, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.sent += int64(n)
		c.progress(c.sent, c.total)
	}
	return n, err
}
