package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// request is a validated submit body with the catalog's defaults behind it.
// The catalog's validation parsed the JSON and decoded its base64 files;
// nothing here parses or decodes them again, which on a 27 MB training body
// is most of the work.
type request struct {
	ep   bfl.Endpoint
	body bfl.Body
}

// readRequest reads and validates a POST body, answering the client itself
// (413, 422) and reporting false when the request goes no further.
func (s *Sim) readRequest(w http.ResponseWriter, r *http.Request, ep bfl.Endpoint) (request, bool) {
	raw, err := readBody(w, r, s.maxBody)
	if err != nil {
		writeBodyError(w, err)
		return request{}, false
	}
	body, issues := ep.ValidateBody(raw)
	if len(issues) > 0 {
		writeIssues(w, issues)
		return request{}, false
	}
	return request{ep: ep, body: body}, true
}

// value is the field's value (numbers as json.Number), or the catalog
// default when absent or null.
func (r request) value(name string) any {
	if v := r.body.Fields[name]; v != nil {
		return v
	}
	if f, ok := r.ep.Field(name); ok {
		return f.Default
	}
	return nil
}

// file is a base64 field's bytes as validation decoded them.
func (r request) file(name string) ([]byte, error) {
	data, ok := r.body.Decoded[name]
	if !ok {
		return nil, fmt.Errorf("%s holds no base64 data", name)
	}
	return data, nil
}

// has reports a non-null value or a default.
func (r request) has(name string) bool { return r.value(name) != nil }

func (r request) str(name string) string {
	s, _ := r.value(name).(string)
	return s
}

// num, integer and boolean read a value as validation accepted it, which
// includes numbers and booleans sent as strings ("1000", "yes").
func (r request) num(name string) float64 {
	v, _ := bfl.NumberValue(r.value(name))
	return v
}

// integer reads whole numbers exactly, as a float64 cannot past 2^53 (a seed
// can be), and clamps those beyond int64 rather than let the conversion
// wrap them.
func (r request) integer(name string) int64 {
	var digits string
	switch v := r.value(name).(type) {
	case json.Number:
		digits = string(v)
	case string:
		digits = strings.TrimSpace(v)
	}
	if i, err := strconv.ParseInt(digits, 10, 64); err == nil {
		return i
	}
	switch f := r.num(name); {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	default:
		return int64(f)
	}
}

func (r request) boolean(name string) bool {
	b, _ := bfl.BoolValue(r.value(name))
	return b
}

// admission is what an endpoint's own checks hand to the shared submit path.
type admission struct {
	task      *task
	cost      float64
	duration  time.Duration
	needModel string // image tasks: the finetune that must be Ready
	// The 2026 answer also reports megapixels; nil for training.
	inputMP, outputMP *float64
}

type prepareFunc func(r request, f faults) (admission, *bfl.ValidationIssue)

// submit is the path every finetune and generation takes: validate, apply
// fault markers, the endpoint's own checks, then admit under the lock.
func (s *Sim) submit(w http.ResponseWriter, r *http.Request, ep bfl.Endpoint, prepare prepareFunc) {
	req, ok := s.readRequest(w, r, ep)
	if !ok {
		return
	}
	markerField := "prompt"
	if ep.Kind == bfl.KindFinetune {
		markerField = "finetune_comment"
	}
	f, err := parseFaults(req.str(markerField))
	if err != nil {
		writeIssues(w, []bfl.ValidationIssue{valueError(markerField, err.Error())})
		return
	}
	if f.slow > 0 {
		t := time.NewTimer(f.slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client gave up: nothing is created or charged
		}
	}
	switch {
	case f.serverError:
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
		return
	case f.tooMany:
		writeTooMany(w, time.Second, s.cfg.MaxActive)
		return
	case f.invalidField != "":
		writeIssues(w, []bfl.ValidationIssue{valueError(f.invalidField,
			"refused by the simulator's [sim:422="+f.invalidField+"] marker")})
		return
	}
	adm, issue := prepare(req, f)
	if issue != nil {
		writeIssues(w, []bfl.ValidationIssue{*issue})
		return
	}
	s.admit(w, req, adm)
}

// refusal is why admission said no, written as BFL would answer it.
type refusal struct {
	status int
	detail string              // the string form of detail, or
	issue  bfl.ValidationIssue // a 422's single issue
	retry  time.Duration       // 429 only
}

func (r refusal) write(w http.ResponseWriter, limit int) {
	switch r.status {
	case http.StatusUnprocessableEntity:
		writeIssues(w, []bfl.ValidationIssue{r.issue})
	case http.StatusTooManyRequests:
		writeTooMany(w, r.retry, limit)
	default:
		writeDetail(w, r.status, r.detail)
	}
}

// admit records the task, or answers why it cannot be accepted.
func (s *Sim) admit(w http.ResponseWriter, req request, adm admission) {
	now := s.cfg.Now()
	id := newID()
	s.mu.Lock()
	no := s.admitLocked(now, id, adm)
	s.mu.Unlock()
	if no != nil {
		no.write(w, s.cfg.MaxActive)
		return
	}
	t := adm.task
	resp := bfl.AsyncResponse{ID: id, InputMP: adm.inputMP, OutputMP: adm.outputMP}
	if t.kind == kindImage {
		resp.Cost = &adm.cost
	}
	if hook := req.str("webhook_url"); hook != "" {
		// BFL answers a webhook submit this way. The simulator never calls
		// the hook: it makes no outbound requests; poll the id instead.
		resp.Status, resp.WebhookURL = bfl.StatusPending, hook
	} else {
		resp.PollingURL = s.cfg.APIBase + "/v1/get_result?id=" + id
	}
	writeJSON(w, http.StatusOK, resp)
}

// admitLocked checks the model, the active-task limit and the balance, then
// charges and records the task: one locked step, so racing submits can
// neither exceed the limit nor spend the same credits twice.
func (s *Sim) admitLocked(now time.Time, id string, adm admission) *refusal {
	if adm.needModel != "" {
		if no := s.modelUsableLocked(now, adm.needModel); no != nil {
			return no
		}
	}
	if active, next := s.activeLocked(now); active >= s.cfg.MaxActive {
		return &refusal{status: http.StatusTooManyRequests, retry: next}
	}
	if s.credits < adm.cost {
		return &refusal{status: http.StatusPaymentRequired, detail: fmt.Sprintf(
			"Insufficient credits: this request costs %g credits and the balance is %g", adm.cost, s.credits)}
	}
	s.credits -= adm.cost
	t := adm.task
	t.created = now
	t.readyAt = now.Add(adm.duration)
	if t.outcome == bfl.StatusRequestModerated {
		t.readyAt = now
	}
	if t.finetune != nil {
		t.finetune.id = id
		t.finetune.created = now
		t.finetune.details["timestamp"] = now.UTC().Format(time.RFC3339)
		s.finetunes[id] = t.finetune
	}
	s.tasks[id] = t
	if t.kind == kindImage {
		s.images = append(s.images, id)
		s.trimImagesLocked(now)
	}
	return nil
}

// modelUsableLocked says why a finetune cannot generate: 404 when unknown,
// 422 on finetune_id while it trains or after it failed; nil when it is Ready.
func (s *Sim) modelUsableLocked(now time.Time, id string) *refusal {
	t, ok := s.tasks[id]
	if _, known := s.finetunes[id]; !known || !ok {
		return &refusal{status: http.StatusNotFound, detail: "Finetune not found: " + id}
	}
	switch status, progress := t.state(now); status {
	case bfl.StatusReady:
		return nil
	case bfl.StatusPending:
		return &refusal{status: http.StatusUnprocessableEntity, issue: valueError("finetune_id", fmt.Sprintf(
			"finetune %s is still training (Pending, %.0f%% done); generate once it is Ready", id, *progress*100))}
	default:
		return &refusal{status: http.StatusUnprocessableEntity, issue: valueError("finetune_id", fmt.Sprintf(
			"finetune %s ended %s and cannot generate", id, status))}
	}
}

// activeLocked counts Pending tasks and says when the first of them ends.
func (s *Sim) activeLocked(now time.Time) (int, time.Duration) {
	n, next := 0, time.Duration(math.MaxInt64)
	for _, t := range s.tasks {
		if status, _ := t.state(now); status == bfl.StatusPending {
			n++
			next = min(next, t.readyAt.Sub(now))
		}
	}
	return n, next
}

// writeTooMany answers 429 with a Retry-After in whole seconds, at least 1.
func writeTooMany(w http.ResponseWriter, retry time.Duration, limit int) {
	secs := max(int64(math.Ceil(retry.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeDetail(w, http.StatusTooManyRequests, fmt.Sprintf(
		"Too many active tasks: the limit is %d at once; retry after %d s", limit, secs))
}

// outcome turns the markers into how a task ends and what details it reports.
func outcome(f faults) (bfl.Status, map[string]any) {
	switch {
	case f.requestModerated:
		return bfl.StatusRequestModerated, map[string]any{
			"Moderation Reasons": []string{"Simulated request moderation ([sim:request-moderated])"}}
	case f.fail:
		return bfl.StatusError, map[string]any{"error": "Simulated failure ([sim:error])"}
	case f.contentModerated:
		return bfl.StatusContentModerated, map[string]any{
			"Moderation Reasons": []string{"Simulated content moderation ([sim:content-moderated])"}}
	}
	return bfl.StatusReady, nil
}

// prepareFinetune checks the training ZIP and prices the run by iterations.
func (s *Sim) prepareFinetune(r request, f faults) (admission, *bfl.ValidationIssue) {
	zipData, err := r.file("file_data")
	if err != nil {
		issue := valueError("file_data", err.Error())
		return admission{}, &issue
	}
	if err := checkDataset(zipData); err != nil {
		issue := valueError("file_data", err.Error())
		return admission{}, &issue
	}
	iterations := r.integer("iterations")
	ftType := r.str("finetune_type")
	learningRate := bfl.EffectiveLearningRate(ftType)
	if r.has("learning_rate") {
		learningRate = r.num("learning_rate")
	}
	status, details := outcome(f)
	return admission{
		task: &task{kind: kindTraining, outcome: status, details: details, finetune: &finetune{
			details: map[string]any{
				"finetune_comment": r.str("finetune_comment"),
				"trigger_word":     r.str("trigger_word"),
				"mode":             r.str("mode"),
				"finetune_type":    ftType,
				"lora_rank":        r.integer("lora_rank"),
				"iterations":       iterations,
				"learning_rate":    learningRate,
				"priority":         r.str("priority"),
				"captioning":       r.boolean("captioning"),
			},
		}},
		cost:     s.prices["finetune"] * float64(iterations),
		duration: s.cfg.TrainDuration.D(),
	}, nil
}

// prepareImage works out the picture (size, format, seed) and its price.
func (s *Sim) prepareImage(r request, f faults) (admission, *bfl.ValidationIssue) {
	width, height, inputMP, issue := imageSize(r)
	if issue != nil {
		return admission{}, issue
	}
	seed := rand.Int64N(1 << 32)
	if r.has("seed") {
		seed = r.integer("seed")
	}
	format := "jpeg"
	switch r.str("output_format") {
	case "png", "webp":
		// webp is answered as PNG: Go's standard library cannot encode webp,
		// and the file's name and Content-Type say what it really is.
		format = "png"
	}
	status, details := outcome(f)
	outputMP := round2(float64(width*height) / 1e6)
	return admission{
		task: &task{kind: kindImage, outcome: status, details: details, expire: f.expire,
			image: imageSpec{prompt: r.str("prompt"), seed: seed, width: width, height: height, format: format}},
		cost:      s.prices[r.ep.Name],
		duration:  s.cfg.GenerateDuration.D(),
		needModel: r.str("finetune_id"),
		inputMP:   inputMP,
		outputMP:  &outputMP,
	}, nil
}
