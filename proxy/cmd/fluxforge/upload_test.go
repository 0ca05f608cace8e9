package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/proxy/internal/slowupstream"
)

// zeros is an endless body that holds no memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestSIGTERMDuringUploadFinishesItAndExitsZero stops the real binary with
// SIGTERM while a 100 MB upload streams to an upstream that reads slowly:
// the upload completes (upstream got every byte, the client the answer)
// and the process exits 0.
func TestSIGTERMDuringUploadFinishesItAndExitsZero(t *testing.T) {
	const size = 100 << 20
	up, got := slowupstream.Start()
	defer up.Close()

	cmd := command(t, "ADDR=127.0.0.1:0", "SITE_DIR="+t.TempDir(), "BFL_API_KEY=k", "BFL_API_URL="+up.URL,
		"MAX_BODY_MB=200", "SHUTDOWN_TIMEOUT=60s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	addr := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		exited <- cmd.Wait()
	}()
	var base string
	select {
	case base = <-addr:
	case <-time.After(20 * time.Second):
		t.Fatal("not listening within 20s")
	}

	type result struct {
		status   int
		received int64
		err      error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/finetune", io.LimitReader(zeros{}, size))
		req.ContentLength = size
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var a struct{ Received int64 }
		err = json.NewDecoder(resp.Body).Decode(&a)
		res <- result{resp.StatusCode, a.Received, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < 10<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d bytes reached the upstream in 30s", got.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM mid-upload: %v, want status 0", err)
		}
	case <-time.After(70 * time.Second):
		t.Fatal("no exit within SHUTDOWN_TIMEOUT=60s and 10s of SIGTERM")
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("the client heard nothing within 30s of the exit")
	}
	t.Logf("exit 0 %v after SIGTERM at 10 MB; client: status %d, error %v; upstream received %d bytes",
		time.Since(signalled).Round(time.Millisecond), r.status, r.err, got.Load())
	// SHUTDOWN_TIMEOUT leaves ample time, so the upload must have finished;
	// the cut case is TestStopCuttingAnUploadTellsTheClient in package proxy.
	if r.err != nil || r.status != http.StatusOK || r.received != size || got.Load() != size {
		t.Errorf("want the upload completed: client got %d (error %v) saying %d bytes; upstream received %d of %d",
			r.status, r.err, r.received, got.Load(), size)
	}
}
