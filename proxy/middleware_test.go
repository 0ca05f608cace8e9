package proxy

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter blocks every write until it is opened, like a log pipe whose
// reader has stalled.
type gateWriter struct {
	open chan struct{}
	once sync.Once
	buf  syncBuffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.buf.Write(p)
}

func (g *gateWriter) release() { g.once.Do(func() { close(g.open) }) }

// The access log line is written after the answer has gone out: a slow
// log never holds up an answer of known length, forwarded or the proxy's
// own.
func TestAnswerDoesNotWaitForItsLogLine(t *testing.T) {
	up, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"credits":3}`))
	}, nil)
	logs := &gateWriter{open: make(chan struct{})}
	p := startWith(t, map[string]string{"BFL_API_KEY": testKey, "BFL_API_URL": up.URL}, logs)
	t.Cleanup(logs.release) // before the harness stops the proxy
	for _, c := range []struct {
		path   string
		status int
	}{{"/api/v1/credits", 200}, {"/api/nope", 404}, {"/healthz", 200}} {
		got := make(chan int, 1)
		go func() {
			resp, err := client().Get(p.base + c.path)
			if err != nil {
				t.Error(err)
				got <- 0
				return
			}
			resp.Body.Close()
			got <- resp.StatusCode
		}()
		select {
		case status := <-got:
			if status != c.status {
				t.Errorf("%s: %d, want %d", c.path, status, c.status)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no answer while the log is blocked", c.path)
		}
	}
	logs.release()
	p.stopAndWait(t)
	if n := strings.Count(logs.buf.String(), `"msg":"request"`); n != 3 {
		t.Errorf("%d request lines logged, want 3:\n%s", n, logs.buf.String())
	}
}
