package sim

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// clock is a fake time source tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testEnv is a simulator under test and a way to talk to it: over loopback HTTP,
// or through its in-process Transport.
type testEnv struct {
	t      *testing.T
	sim    *Sim
	clock  *clock
	api    string // base URL requests go to
	client *http.Client
	key    string // sent as x-key when not empty
}

// newHTTPEnv serves the simulator on a loopback server whose URL is both
// bases, as the standalone bflsim does.
func newHTTPEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	var s *Sim
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	c := newClock()
	cfg.APIBase, cfg.DeliveryBase, cfg.Now = srv.URL, srv.URL, c.Now
	s = New(cfg)
	t.Cleanup(s.Close)
	return &testEnv{t: t, sim: s, clock: c, api: srv.URL, client: srv.Client(), key: cfg.Key}
}

// newTransportEnv talks to the simulator only through Transport, on its
// default simulated hosts, as the proxy does in simulated mode.
func newTransportEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	c := newClock()
	cfg.Now = c.Now
	s := New(cfg)
	t.Cleanup(s.Close)
	return &testEnv{t: t, sim: s, clock: c, api: "https://" + APIHost, client: &http.Client{Transport: s.Transport()}, key: cfg.Key}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// apiError reads an error answer with the catalog's decoder, as the app does.
func (r reply) apiError(t *testing.T) *bfl.Error {
	t.Helper()
	return bfl.DecodeError(r.status, r.body)
}

// do sends one request with a deadline; body is JSON-encoded unless it is a []byte.
func (e *testEnv) do(method, url string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.key != "" {
		req.Header.Set("x-key", e.key)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read %s %s: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *testEnv) get(path string) reply            { return e.do(http.MethodGet, e.api+path, nil) }
func (e *testEnv) post(path string, body any) reply { return e.do(http.MethodPost, e.api+path, body) }

// submit posts and requires a 200 submit answer.
func (e *testEnv) submit(endpoint string, body any) bfl.AsyncResponse {
	e.t.Helper()
	r := e.post("/v1/"+endpoint, body)
	if r.status != http.StatusOK {
		e.t.Fatalf("submit %s: %d %s", endpoint, r.status, r.body)
	}
	var a bfl.AsyncResponse
	r.decode(e.t, &a)
	return a
}

// result polls a task once through its polling_url, as clients must.
func (e *testEnv) result(pollingURL string) bfl.ResultResponse {
	e.t.Helper()
	r := e.do(http.MethodGet, pollingURL, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("get_result: %d %s", r.status, r.body)
	}
	var res bfl.ResultResponse
	r.decode(e.t, &res)
	return res
}

func (e *testEnv) credits() float64 {
	e.t.Helper()
	var c bfl.Credits
	e.get("/v1/credits").decode(e.t, &c)
	return c.Credits
}

// readyFinetune trains a finetune on 3 images and moves the clock past it.
func (e *testEnv) readyFinetune(fields map[string]any) string {
	e.t.Helper()
	body := map[string]any{"file_data": datasetZIP(e.t, 3, true), "finetune_comment": "cat", "mode": "character"}
	for k, v := range fields {
		body[k] = v
	}
	a := e.submit("finetune", body)
	e.clock.Advance(e.sim.cfg.TrainDuration.D())
	if st := e.result(a.PollingURL).Status; st != bfl.StatusReady {
		e.t.Fatalf("finetune after training: %s", st)
	}
	return a.ID
}

// fetchSample downloads the Ready image task's sample.
func (e *testEnv) fetchSample(res bfl.ResultResponse) reply {
	e.t.Helper()
	var img bfl.ImageResult
	if err := json.Unmarshal(res.Result, &img); err != nil {
		e.t.Fatalf("image result %s: %v", res.Result, err)
	}
	return e.do(http.MethodGet, img.Sample, nil)
}

func testImage(w, h int, c color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	return img
}

func pngBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(w, h, color.RGBA{200, 40, 90, 255})); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(w, h, color.RGBA{20, 140, 90, 255}), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zipOf builds a ZIP from name -> content, in the given name order.
func zipOf(t testing.TB, names []string, files map[string][]byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// datasetZIP is a valid training set of n images (alternating PNG and JPEG),
// with a caption for each when captions is set, as base64.
func datasetZIP(t testing.TB, n int, captions bool) string {
	files := map[string][]byte{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("img%02d.png", i)
		data := pngBytes(t, 64, 48)
		if i%2 == 1 {
			name, data = fmt.Sprintf("img%02d.jpg", i), jpegBytes(t, 48, 64)
		}
		names, files[name] = append(names, name), data
		if captions {
			txt := strings.TrimSuffix(strings.TrimSuffix(name, ".png"), ".jpg") + ".txt"
			names, files[txt] = append(names, txt), []byte("a photo of TOK")
		}
	}
	return base64.StdEncoding.EncodeToString(zipOf(t, names, files))
}

func pngB64(t testing.TB, w, h int) string {
	return base64.StdEncoding.EncodeToString(pngBytes(t, w, h))
}
