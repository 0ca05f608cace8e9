// Package slowupstream is a BFL stand-in for the proxy's shutdown and upload
// tests: it takes a request body slowly, so a test can act while an upload
// is still in flight.
package slowupstream

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// Start serves an upstream that reads each body at about 40 MB/s (256 KB,
// then a 5 ms pause), counts into the returned counter what has arrived of
// the current one, and answers {"received": n} once it has it all. Close
// the server when done.
func Start() (*httptest.Server, *atomic.Int64) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(0)
		buf := make([]byte, 256<<10)
		for {
			n, err := r.Body.Read(buf)
			got.Add(int64(n))
			if err == io.EOF {
				break
			}
			if err != nil {
				return // cut off: nobody is left to answer
			}
			time.Sleep(5 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"received":%d}`, got.Load())
	}))
	return srv, &got
}
