package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/gallery"
)

// API is what the service needs of core.API.
type API interface {
	Get(ctx context.Context, endpoint string, query url.Values, out any) error
	Post(ctx context.Context, endpoint string, body any, out any) error
	Poll(ctx context.Context, pollingURL string) (bfl.ResultResponse, error)
	Image(ctx context.Context, sampleURL string) ([]byte, string, error)
}

// MaxInFlight is BFL's limit of active tasks per account.
const MaxInFlight = 24

// Options tune a Service.
type Options struct {
	Poller      Poller
	MaxInFlight int // tasks submitted and not yet terminal; MaxInFlight by default
	Now         func() time.Time
}

// Service generates images and keeps them.
type Service struct {
	api     API
	gallery *gallery.Gallery
	poller  Poller
	now     func() time.Time
	// slots is a semaphore: a slot is held from submit to terminal status, so
	// single generations, batches and resumed tasks together stay under the limit.
	slots chan struct{}

	// following holds the tasks this service is polling or fetching for:
	// Resume starts as the app does, and must not take up a task a Generate
	// of the same session is already following.
	following core.Claims

	subs core.Listeners[gallery.Record]
}

// New returns a service.
func New(api API, g *gallery.Gallery, o Options) *Service {
	if o.MaxInFlight < 1 {
		o.MaxInFlight = MaxInFlight
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{api: api, gallery: g, poller: o.Poller, now: o.Now, slots: make(chan struct{}, o.MaxInFlight)}
}

// Subscribe calls fn with every change of any task, whoever started it (a
// generation, a batch or Resume), from the polling goroutines, until cancel.
// A tab subscribes while it is shown; the tasks go on without it.
func (s *Service) Subscribe(fn Update) (cancel func()) {
	return s.subs.Add(fn)
}

// withSubscribers returns an Update that calls u (when set) and then every subscriber.
func (s *Service) withSubscribers(u Update) Update {
	return func(r gallery.Record) {
		if u != nil {
			u(r)
		}
		s.subs.Tell(r)
	}
}

// NotReadyError refuses a model that cannot generate yet.
type NotReadyError struct{ Reason string }

func (e *NotReadyError) Error() string { return e.Reason }

// Update receives a task's record each time it changes.
type Update func(gallery.Record)

// Generate submits the form, polls the task and stores the outcome. It returns
// the final record; a task that was moderated or failed is not an error (its
// record says why), only a refused submit or a broken poll is.
func (s *Service) Generate(ctx context.Context, f Form, update Update) (gallery.Record, error) {
	update = s.withSubscribers(update)
	if ok, reason := f.Model.Readiness(); !ok {
		return gallery.Record{}, &NotReadyError{Reason: reason}
	}
	seed := f.Seed.Pick()
	body, err := f.Body(seed)
	if err != nil {
		return gallery.Record{}, err
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return gallery.Record{}, fmt.Errorf("wait for a free task slot: %w", ctx.Err())
	}
	defer func() { <-s.slots }()

	rec := gallery.Record{
		Endpoint: f.Endpoint, ModelID: f.Model.ID, ModelName: f.Model.Name,
		Seed: &seed, SeedLocked: f.Seed.Locked, Params: params(body), BatchID: f.Batch,
		Created: s.now().UTC(),
	}
	rec.Prompt, _ = body["prompt"].(string)
	var sub bfl.AsyncResponse
	if err := s.api.Post(ctx, f.Endpoint, body, &sub); err != nil {
		return rec, fmt.Errorf("submit %s: %w", f.Endpoint, err)
	}
	if sub.ID == "" {
		return rec, fmt.Errorf("submit %s: the answer has no task id", f.Endpoint)
	}
	rec.ID, rec.PollingURL, rec.Cost, rec.Status = sub.ID, sub.PollingURL, sub.Cost, bfl.StatusPending
	// Claimed before the record is stored, where Resume could list it.
	if release, ok := s.following.Claim(rec.ID); ok {
		defer release()
	}
	// From here the task is paid for: whatever storage refuses, it is
	// followed to its image, and the failures are reported with it.
	var kept []error
	for name, img := range f.Images {
		if _, sent := body[name]; !sent {
			continue
		}
		if err := s.gallery.SaveInput(ctx, &rec, name, img.Data, img.MediaType); err != nil {
			kept = append(kept, fmt.Errorf("keep the %s input of %s: %w", name, rec.ID, err))
		}
	}
	if err := s.gallery.Save(ctx, rec); err != nil {
		kept = append(kept, err)
	}
	update(rec)
	rec, err = s.track(ctx, rec, update)
	return rec, errors.Join(append(kept, err)...)
}

// params is the body without its base64 images, which are stored as blobs.
func params(body map[string]any) map[string]any {
	out := make(map[string]any, len(body))
	for k, v := range body {
		if isImageField(k) {
			continue
		}
		out[k] = v
	}
	// A JSON round trip gives the record the same value types it has after a reload.
	raw, err := json.Marshal(out)
	if err != nil {
		return out
	}
	var norm map[string]any
	if json.Unmarshal(raw, &norm) != nil {
		return out
	}
	return norm
}

// isImageField reports whether a generator declares the field as a base64 image.
func isImageField(name string) bool {
	for _, ep := range bfl.Generators(true) {
		if fd, ok := ep.Field(name); ok {
			return fd.Format == bfl.FormatBase64Image
		}
	}
	return false
}

// track polls a submitted task to its end and stores the outcome. A deadline or
// a cancelled context leave the record Pending, so Resume can take it up again.
func (s *Service) track(ctx context.Context, rec gallery.Record, update Update) (gallery.Record, error) {
	poll := func(ctx context.Context) (bfl.ResultResponse, error) {
		if rec.PollingURL != "" {
			return s.api.Poll(ctx, rec.PollingURL)
		}
		// Submits with a webhook answer no polling URL; get_result works on the regional hosts.
		var r bfl.ResultResponse
		err := s.api.Get(ctx, "get_result", url.Values{"id": {rec.ID}}, &r)
		return r, err
	}
	res, err := s.poller.Wait(ctx, poll, func(r bfl.ResultResponse, err error) {
		if err != nil {
			rec.Reason = "Checking on the task failed, still trying: " + core.UserMessage(err)
		} else {
			rec.Progress, rec.Reason = r.Progress, ""
		}
		update(rec)
	})
	if err != nil {
		if !errors.Is(err, ErrDeadline) && ctx.Err() == nil {
			rec.Reason = err.Error()
			if serr := s.gallery.Save(ctx, rec); serr != nil {
				return rec, errors.Join(err, serr)
			}
			update(rec)
		}
		return rec, fmt.Errorf("task %s: %w", rec.ID, err)
	}
	rec.Status, rec.Progress, rec.Details, rec.Finished, rec.Reason = res.Status, nil, res.Details, s.now().UTC(), ""
	if res.Status == bfl.StatusReady {
		rec = s.fetch(ctx, rec, res)
	} else {
		rec.Reason = reason(res)
	}
	if err := s.gallery.Save(ctx, rec); err != nil {
		return rec, err
	}
	update(rec)
	return rec, nil
}

// refetch tries again to keep the image of a finished task that has none.
func (s *Service) refetch(ctx context.Context, rec gallery.Record, update Update) error {
	rec = s.fetchImage(ctx, rec)
	if err := s.gallery.Save(ctx, rec); err != nil {
		return fmt.Errorf("keep the image of %s: %w", rec.ID, err)
	}
	update(rec)
	return nil
}

// linkLife is how long a fetch of a result is tried: BFL's signed links
// work for about 10 minutes after the task ends.
const linkLife = 9 * time.Minute

// fetch downloads the image right away and keeps it with the record.
func (s *Service) fetch(ctx context.Context, rec gallery.Record, res bfl.ResultResponse) gallery.Record {
	var ir bfl.ImageResult
	if err := json.Unmarshal(res.Result, &ir); err != nil || ir.Sample == "" {
		rec.Reason = "BFL reported the image ready but sent no link to it."
		return rec
	}
	rec.Result = &ir
	if ir.Seed != nil {
		rec.Seed = ir.Seed
	}
	return s.fetchImage(ctx, rec)
}

// fetchImage fetches the record's image and keeps it with the record. A
// fetch that failed for a reason asking again can fix is tried again, with
// the poller's backoff, for as long as the link may live: the image is paid
// for, and the link is the only way to it.
func (s *Service) fetchImage(ctx context.Context, rec gallery.Record) gallery.Record {
	p := s.poller.withDefaults()
	for i := 0; ; i++ {
		data, mt, err := s.api.Image(ctx, rec.Result.Sample)
		if err == nil {
			out, err := s.gallery.SaveImage(ctx, rec, data, mt)
			out.Reason = ""
			if err != nil {
				out.Image, out.MediaType = "", ""
				out.Reason = fmt.Sprintf("The image was fetched but could not be stored: %v", err)
			}
			return out
		}
		rec.Reason = fmt.Sprintf("The image was made but could not be fetched: %v", err)
		if !core.Retryable(err) || s.now().Sub(rec.Finished) >= linkLife || p.Sleep(ctx, p.delay(i)) != nil {
			return rec
		}
	}
}

// reason says in words why a task gave no image, with BFL's reasons when it sent them.
func reason(r bfl.ResultResponse) string {
	var why string
	switch r.Status {
	case bfl.StatusRequestModerated:
		why = "The request was moderated"
	case bfl.StatusContentModerated:
		why = "The image was moderated"
	case bfl.StatusError:
		why = "BFL reported an error"
	case bfl.StatusTaskNotFound:
		why = "BFL no longer knows this task"
	default:
		why = fmt.Sprintf("The task ended with the status %q", r.Status)
	}
	if list, ok := r.Details["Moderation Reasons"].([]any); ok && len(list) > 0 {
		parts := make([]string, len(list))
		for i, v := range list {
			parts[i] = fmt.Sprint(v)
		}
		return why + ": " + strings.Join(parts, ", ") + "."
	}
	if len(r.Details) > 0 {
		if b, err := json.Marshal(r.Details); err == nil {
			return why + ": " + string(b)
		}
	}
	return why + "."
}

// Resume polls every stored task that was still running (after a reload) to
// its end, and fetches again a finished image that was not kept while its
// link may still work. It returns when all have ended or ctx is done.
func (s *Service) Resume(ctx context.Context, update Update) error {
	update = s.withSubscribers(update)
	recs, err := s.gallery.List(ctx, "")
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	errs := make(chan error, len(recs))
	n := 0
	for _, r := range recs {
		if r.ID == "" {
			continue
		}
		refetch := r.Status == bfl.StatusReady && !r.HasImage() && r.Result != nil && r.Result.Sample != "" && s.now().Sub(r.Finished) < linkLife
		if !r.Running() && !refetch {
			continue
		}
		release, ok := s.following.Claim(r.ID)
		if !ok {
			continue
		}
		n++
		if refetch {
			go func() {
				defer release()
				errs <- s.refetch(ctx, r, update)
			}()
			continue
		}
		go func() {
			defer release()
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			defer func() { <-s.slots }()
			_, err := s.track(ctx, r, update)
			errs <- err
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
