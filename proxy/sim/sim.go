package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// maxImageTasks bounds the image tasks remembered, and so their samples: a
// few hundred bytes each, whatever the picture's size. Past it the oldest
// finished ones are forgotten before their time, which only a flood of
// generations (a load test) reaches.
const maxImageTasks = 20_000

// maxBody caps a request body. The proxy allows 256 MB by default; the
// simulator holds a body in memory to validate it, so it refuses more.
const maxBody = 256 << 20

// Sim is an in-memory BFL account: its tasks, finetunes, samples and credits.
// It is an http.Handler serving /v1/<endpoint> and /delivery/<file>.
type Sim struct {
	cfg       Config
	endpoints map[string]bfl.Endpoint
	prices    map[string]float64
	maxBody   int64

	mu        sync.Mutex
	credits   float64
	tasks     map[string]*task
	finetunes map[string]*finetune
	samples   map[string]*task // by file name under /delivery/; the task holds the recipe
	images    []string         // image task ids, oldest first, for maxImages
	maxImages int              // image tasks remembered at most

	rendered *renderCache

	stop      chan struct{}
	swept     chan struct{}
	closeOnce sync.Once
}

// New starts a simulator and its expiry sweeper; Close stops the sweeper.
func New(cfg Config) *Sim {
	cfg = cfg.withDefaults()
	s := &Sim{
		cfg:       cfg,
		endpoints: make(map[string]bfl.Endpoint),
		prices:    priceTable(),
		maxBody:   maxBody,
		credits:   *cfg.Credits,
		tasks:     make(map[string]*task),
		finetunes: make(map[string]*finetune),
		samples:   make(map[string]*task),
		maxImages: maxImageTasks,
		rendered:  newRenderCache(renderCacheBytes, runtime.GOMAXPROCS(0)),
		stop:      make(chan struct{}),
		swept:     make(chan struct{}),
	}
	for _, ep := range bfl.Catalog() {
		s.endpoints[ep.Name] = ep
	}
	go s.sweepLoop()
	return s
}

// Close stops the background sweeper. It is safe to call more than once.
func (s *Sim) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.swept
	})
}

// sweepInterval keeps expired samples from lingering long past their TTL
// without waking up needlessly when the TTL is long.
func (s *Sim) sweepInterval() time.Duration {
	return min(max(s.cfg.SampleTTL.D()/4, time.Second), time.Minute)
}

func (s *Sim) sweepLoop() {
	defer close(s.swept)
	t := time.NewTicker(s.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep(s.cfg.Now())
		}
	}
}

// sweep forgets expired samples and image tasks whose sample is long gone,
// so memory stays bounded however long the simulator runs. Training tasks
// live as long as their finetune: get_result with a finetune id must work.
func (s *Sim) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ttl := s.cfg.SampleTTL.D()
	for name, t := range s.samples {
		if !now.Before(t.sampleExpires(ttl)) {
			delete(s.samples, name)
		}
	}
	for id, t := range s.tasks {
		if t.kind == kindImage && now.Sub(t.readyAt) > 2*ttl {
			s.forgetLocked(id, t)
		}
	}
	s.images = slices.DeleteFunc(s.images, func(id string) bool {
		_, ok := s.tasks[id]
		return !ok
	})
}

// trimImagesLocked forgets the oldest image tasks past maxImages, with their
// samples, so a flood of generations cannot grow memory without bound. A
// Pending task is never forgotten: trimming waits until it has finished.
func (s *Sim) trimImagesLocked(now time.Time) {
	for len(s.images) > s.maxImages {
		id := s.images[0]
		if t, ok := s.tasks[id]; ok {
			if status, _ := t.state(now); status == bfl.StatusPending {
				return
			}
			s.forgetLocked(id, t)
		}
		s.images = s.images[1:]
	}
}

// forgetLocked drops an image task and its sample.
func (s *Sim) forgetLocked(id string, t *task) {
	delete(s.tasks, id)
	if t.sample != "" {
		delete(s.samples, t.sample)
	}
}

// ServeHTTP routes the simulated API and the delivery host. Both share one
// handler so the standalone server can serve them from a single address.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		s.serveAPI(w, r)
	case strings.HasPrefix(r.URL.Path, "/delivery/"):
		s.serveDelivery(w, r)
	default:
		writeDetail(w, http.StatusNotFound, "Not Found")
	}
}

// serveAPI checks route, method and key in the order a FastAPI server does
// (an unknown path is 404 whatever the key), then dispatches by endpoint.
func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	ep, ok := s.endpoints[strings.TrimPrefix(r.URL.Path, "/v1/")]
	if !ok {
		writeDetail(w, http.StatusNotFound, "Not Found")
		return
	}
	if r.Method != ep.Method {
		w.Header().Set("Allow", ep.Method)
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if !s.authorized(r) {
		writeDetail(w, http.StatusForbidden, "Not authenticated - Invalid Authentication")
		return
	}
	if ep.Method == http.MethodGet {
		if issues := ep.ValidateQuery(r.URL.Query()); len(issues) > 0 {
			writeIssues(w, issues)
			return
		}
	}
	switch ep.Kind {
	case bfl.KindFinetune:
		s.submit(w, r, ep, s.prepareFinetune)
	case bfl.KindGenerate:
		s.submit(w, r, ep, s.prepareImage)
	case bfl.KindResult:
		s.getResult(w, r)
	case bfl.KindAccount:
		s.getCredits(w)
	default:
		s.manage(w, r, ep)
	}
}

func (s *Sim) authorized(r *http.Request) bool {
	if s.cfg.Key == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("x-key")), []byte(s.cfg.Key)) == 1
}

// readBody reads a request body up to limit bytes, presizing the buffer from
// Content-Length so a 27 MB upload is not copied through doubling buffers.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return buf.Bytes(), nil
}

// writeBodyError answers a body that could not be read: 413 past the cap,
// else 400 (the client went away or sent a broken stream).
func writeBodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeDetail(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("Request body too large: the limit is %d bytes", tooBig.Limit))
		return
	}
	writeDetail(w, http.StatusBadRequest, "Could not read the request body")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value written here is built from strings and numbers.
		status, b = http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeDetail answers with FastAPI's string form: {"detail": "..."}.
func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]string{"detail": detail})
}

// writeIssues answers 422 with FastAPI's list form.
func writeIssues(w http.ResponseWriter, issues []bfl.ValidationIssue) {
	b := bfl.ValidationBody(issues)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusUnprocessableEntity)
	_, _ = w.Write(b)
}

// valueError is the issue pydantic reports when a custom check fails.
func valueError(field, msg string) bfl.ValidationIssue {
	return bfl.ValidationIssue{Loc: []any{"body", field}, Msg: "Value error, " + msg, Type: "value_error"}
}

// newID returns a random version-4 UUID, the form BFL's ids take.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newToken names a sample file: unguessable, like BFL's signed URLs.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// unixSeconds is a time as BFL's result timestamps: float seconds.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

// round2 rounds to two decimals, as BFL reports megapixels.
func round2(v float64) float64 { return math.Round(v*100) / 100 }
