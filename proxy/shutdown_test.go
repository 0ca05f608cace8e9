package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/proxy/internal/slowupstream"
)

const uploadSize = 100 << 20

// slowReader is an upstream that takes a body slowly; see slowupstream.
func slowReader(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	srv, got := slowupstream.Start()
	t.Cleanup(srv.Close)
	return srv, got
}

// uploadResult is what the uploading client learnt.
type uploadResult struct {
	status   int
	received int64
	err      error
}

func upload(base string) uploadResult {
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/finetune", &patternReader{left: uploadSize})
	if err != nil {
		return uploadResult{err: err}
	}
	req.ContentLength = uploadSize
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return uploadResult{err: err}
	}
	defer resp.Body.Close()
	var answer struct{ Received int64 }
	err = json.NewDecoder(resp.Body).Decode(&answer)
	return uploadResult{status: resp.StatusCode, received: answer.Received, err: err}
}

// stopped is what a stop during an upload left: what the client learnt,
// what the upstream received, Run's result and how long Run took to return
// after the cancel.
type stopped struct {
	client   uploadResult
	received int64
	runErr   error
	took     time.Duration
}

// stopMidUpload starts a 100 MB upload through a live proxy to a slow
// upstream and cancels Run's context once 10 MB have arrived.
func stopMidUpload(t *testing.T, shutdownTimeout time.Duration) stopped {
	t.Helper()
	up, got := slowReader(t)
	p := startLive(t, &fakeBFL{Server: up}, map[string]string{
		"MAX_BODY_MB": "200", "SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
	})
	res := make(chan uploadResult, 1)
	go func() { res <- upload(p.base) }()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < 10<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d bytes reached the upstream in 30s", got.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got.Load() >= uploadSize {
		t.Fatal("the upload ended before the stop: the upstream reads too fast for this test")
	}
	stopAt := time.Now()
	p.stop()
	var runErr error
	select {
	case runErr = <-p.done:
		// The harness checks at cleanup for a clean stop; these tests
		// check Run's result themselves.
		p.done <- nil
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Fatalf("Run did not return within SHUTDOWN_TIMEOUT=%s and 10s", shutdownTimeout)
	}
	took := time.Since(stopAt)
	var r uploadResult
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("the client heard nothing within 30s of Run returning")
	}
	return stopped{client: r, received: got.Load(), runErr: runErr, took: took}
}

// A stop during an upload lets it finish: the upstream gets every byte, the
// client its answer, and Run returns nil within SHUTDOWN_TIMEOUT.
func TestStopDuringUploadLetsItFinish(t *testing.T) {
	const limit = 60 * time.Second
	st := stopMidUpload(t, limit)
	r, received, runErr, took := st.client, st.received, st.runErr, st.took
	t.Logf("Run returned %v after %v; client: status %d, error %v; upstream received %d bytes",
		runErr, took.Round(time.Millisecond), r.status, r.err, received)
	if runErr != nil || took > limit {
		t.Errorf("Run returned %v after %v, want nil within SHUTDOWN_TIMEOUT=%s", runErr, took, limit)
	}
	if r.err != nil || r.status != http.StatusOK || r.received != uploadSize || received != uploadSize {
		t.Errorf("want the upload completed: client got %d (error %v) saying %d bytes; upstream received %d of %d",
			r.status, r.err, r.received, received, uploadSize)
	}
}

// When SHUTDOWN_TIMEOUT ends first the upload is cut, and the client must
// learn it: an error, never a success. Run says the requests were cut.
func TestStopCuttingAnUploadTellsTheClient(t *testing.T) {
	const limit = 300 * time.Millisecond
	st := stopMidUpload(t, limit)
	r, received, runErr, took := st.client, st.received, st.runErr, st.took
	t.Logf("Run returned %v after %v; client: status %d, error %v; upstream received %d bytes",
		runErr, took.Round(time.Millisecond), r.status, r.err, received)
	if received >= uploadSize {
		t.Skip("the upload finished within the 300 ms SHUTDOWN_TIMEOUT; nothing was cut")
	}
	if r.err == nil && r.status == http.StatusOK {
		t.Errorf("the client was told the cut upload succeeded (%d bytes of %d arrived)", received, uploadSize)
	}
	if runErr == nil || took > limit+5*time.Second {
		t.Errorf("Run returned %v after %v; want an error saying requests were cut, soon after %s", runErr, took, limit)
	}
}
