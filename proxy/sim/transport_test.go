package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

const (
	streamSize = 30 << 20
	chunk      = 32 << 10
	// allocBudget is what one streamed exchange may allocate: far below the
	// 30 MB it moves, so a copy of the body anywhere would break it.
	allocBudget = 4 << 20
)

var errTimeout = errors.New("timed out waiting for the other side")

// gatedReader yields n bytes in chunks; after the first `gate` bytes it waits
// until open is closed, so the test knows the other side moved first.
type gatedReader struct {
	n, sent, gate int
	open          <-chan struct{}
	buf           []byte
	err           error
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.sent >= g.n {
		return 0, io.EOF
	}
	if g.sent >= g.gate && g.open != nil {
		select {
		case <-g.open:
			g.open = nil
		case <-time.After(10 * time.Second):
			g.err = errTimeout
			return 0, g.err
		}
	}
	k := min(len(p), len(g.buf), g.n-g.sent)
	copy(p, g.buf[:k])
	g.sent += k
	return k, nil
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func testTransport(h http.HandlerFunc) *http.Client {
	return &http.Client{Transport: newTransport(h, "https://"+APIHost)}
}

// A 30 MB upload reaches the handler while the client is still writing, and
// the exchange allocates a small fraction of the body's size.
func TestTransportStreamsRequestBody(t *testing.T) {
	started := make(chan struct{})
	signal := sync.OnceFunc(func() { close(started) })
	client := testTransport(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, chunk)
		received := 0
		for {
			n, err := r.Body.Read(buf)
			if received += n; received > 0 {
				signal()
			}
			if err != nil {
				break
			}
		}
		fmt.Fprintf(w, "%d", received)
	})
	body := &gatedReader{n: streamSize, gate: 1 << 20, open: started, buf: make([]byte, chunk)}
	before := totalAlloc()
	resp := roundTrip(t, client, http.MethodPost, "/v1/finetune", body)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	allocated := totalAlloc() - before
	if err != nil || body.err != nil {
		t.Fatalf("read %v, client body %v (the handler never started reading early)", err, body.err)
	}
	if string(got) != fmt.Sprint(streamSize) {
		t.Fatalf("handler received %s bytes, want %d", got, streamSize)
	}
	checkAllocated(t, "upload", allocated)
}

// roundTrip sends one request through client with a deadline; the caller
// closes the response body.
func roundTrip(t *testing.T, client *http.Client, method, path string, body io.Reader) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, "https://"+APIHost+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func checkAllocated(t *testing.T, what string, allocated uint64) {
	t.Helper()
	t.Logf("streamed a %d MB %s, allocated %d KB", streamSize>>20, what, allocated>>10)
	if allocated > allocBudget {
		t.Fatalf("allocated %d bytes for a %d-byte %s: it was buffered", allocated, streamSize, what)
	}
}

// A 30 MB answer reaches the client while the handler is still writing.
func TestTransportStreamsResponseBody(t *testing.T) {
	firstRead := make(chan struct{})
	handlerErr := make(chan error, 1)
	client := testTransport(func(w http.ResponseWriter, r *http.Request) {
		src := &gatedReader{n: streamSize, gate: 1 << 20, open: firstRead, buf: make([]byte, chunk)}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, err := io.CopyBuffer(w, src, make([]byte, chunk))
		handlerErr <- errors.Join(err, src.err)
	})
	before := totalAlloc()
	resp := roundTrip(t, client, http.MethodGet, "/delivery/big", nil)
	defer resp.Body.Close()
	buf := make([]byte, chunk)
	n, err := io.ReadFull(resp.Body, buf)
	if err != nil {
		t.Fatal(err)
	}
	close(firstRead)
	rest, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	allocated := totalAlloc() - before
	if err != nil || int(rest)+n != streamSize {
		t.Fatalf("read %d bytes: %v", int(rest)+n, err)
	}
	if err := <-handlerErr; err != nil {
		t.Fatalf("handler: %v", err)
	}
	checkAllocated(t, "download", allocated)
}

// Cancelling before the handler answers fails the round trip at once and
// cancels the handler's context.
func TestTransportCancelBeforeAnswer(t *testing.T) {
	handlerSaw := make(chan error, 1)
	client := testTransport(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		handlerSaw <- r.Context().Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+APIHost+"/v1/credits", nil)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("round trip succeeded after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	select {
	case err := <-handlerSaw:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler saw %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
}

// Cancelling mid-answer fails the client's next read and the handler's next write.
func TestTransportCancelDuringAnswer(t *testing.T) {
	handlerErr := make(chan error, 1)
	client := testTransport(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, chunk)
		for {
			if _, err := w.Write(buf); err != nil {
				handlerErr <- err
				return
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+APIHost+"/delivery/endless", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 3*chunk)); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-handlerErr:
		if err == nil {
			t.Fatal("handler write succeeded after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler kept writing after cancel")
	}
	if _, err := io.Copy(io.Discard, resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
}

// blockingBody never yields data; Close releases a pending Read.
type blockingBody struct{ closed chan struct{} }

func (b *blockingBody) Read([]byte) (int, error) { <-b.closed; return 0, io.ErrClosedPipe }
func (b *blockingBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

// Cancelling during a stalled upload unblocks the handler's read and closes
// the client's body, as net/http's transport does.
func TestTransportCancelDuringUpload(t *testing.T) {
	handlerErr := make(chan error, 1)
	client := testTransport(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		handlerErr <- err
	})
	body := &blockingBody{closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+APIHost+"/v1/finetune", body)
	if _, err := client.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	select {
	case err := <-handlerErr:
		if err == nil {
			t.Fatal("handler read a complete body")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's read was not unblocked")
	}
	select {
	case <-body.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the request body was not closed")
	}
}

// Only the simulator's own origins are served; anything else is an error
// and never a network request.
func TestTransportRefusesOtherHosts(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	client := &http.Client{Transport: s.Transport()}
	for _, u := range []string{
		"https://api.us1.bfl.ai/v1/credits",
		"http://" + APIHost + "/v1/credits", // wrong scheme
		"https://" + APIHost + ":8443/v1/credits",
		"https://evil" + DeliveryHost + "/delivery/x.png",
	} {
		body := &blockingBody{closed: make(chan struct{})}
		req, _ := http.NewRequest(http.MethodPost, u, body)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s was served", u)
		}
		if !errors.Is(err, ErrNotSimulated) {
			t.Fatalf("%s: %v", u, err)
		}
		select {
		case <-body.closed:
		default:
			t.Fatalf("%s: request body not closed", u)
		}
	}
	for _, u := range []string{"https://" + APIHost + "/v1/credits", "https://" + DeliveryHost + "/delivery/gone.png"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		resp.Body.Close()
	}
}

// A panicking handler is an error for the client, not a crash.
func TestTransportHandlerPanic(t *testing.T) {
	client := testTransport(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	_, err := client.Get("https://" + APIHost + "/v1/credits")
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("boom")) {
		t.Fatalf("err %v", err)
	}
}
