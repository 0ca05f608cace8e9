// Package models lists the account's finetunes with their training parameters
// and status, caches them locally and merges in the training jobs started from
// this browser, so a model still training shows up with its progress.
package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// Model is one finetune as the browser shows it.
type Model struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"` // finetune_comment
	TriggerWord  string         `json:"trigger_word,omitempty"`
	Mode         string         `json:"mode,omitempty"`
	Type         string         `json:"type,omitempty"` // finetune_type
	Rank         int            `json:"rank,omitempty"`
	Iterations   int            `json:"iterations,omitempty"`
	LearningRate *float64       `json:"learning_rate,omitempty"`
	Priority     string         `json:"priority,omitempty"`
	Status       bfl.Status     `json:"status,omitempty"`   // "" until known
	Progress     *float64       `json:"progress,omitempty"` // 0..100 while training
	Created      time.Time      `json:"created,omitzero"`
	Details      map[string]any `json:"details,omitempty"` // finetune_details as BFL sent them
	Local        bool           `json:"local,omitempty"`   // a job started in this browser
	Error        string         `json:"error,omitempty"`   // why details or status could not be read
}

// Readiness says whether the model can generate now and, if not, why.
func (m Model) Readiness() (ready bool, reason string) {
	switch m.Status {
	case bfl.StatusReady:
		return true, ""
	case bfl.StatusPending:
		if m.Progress != nil {
			return false, fmt.Sprintf("The model %q is still training (%.0f%%).", m.label(), *m.Progress)
		}
		return false, fmt.Sprintf("The model %q is still training.", m.label())
	case bfl.StatusError:
		return false, fmt.Sprintf("The training of %q failed.", m.label())
	case bfl.StatusRequestModerated, bfl.StatusContentModerated:
		return false, fmt.Sprintf("The training of %q was stopped by moderation (%s).", m.label(), m.Status)
	case "":
		return false, fmt.Sprintf("The status of %q is not known yet: refresh the model list.", m.label())
	}
	return false, fmt.Sprintf("The model %q reports the status %q.", m.label(), m.Status)
}

func (m Model) label() string {
	if m.Name != "" {
		return m.Name
	}
	return m.ID
}

// API is what the service needs of core.API.
type API interface {
	Get(ctx context.Context, endpoint string, query url.Values, out any) error
	Post(ctx context.Context, endpoint string, body any, out any) error
}

// Storage is what the service needs of core.Storage.
type Storage interface {
	Put(ctx context.Context, store, key string, v any) error
	List(ctx context.Context, store string) ([]json.RawMessage, error)
	Delete(ctx context.Context, store, key string) error
}

// DefaultConcurrency bounds the details requests in flight during a refresh:
// enough to hide latency, few enough not to look like a flood to the API.
const DefaultConcurrency = 6

// Service reads, caches and deletes finetunes.
type Service struct {
	api         API
	store       Storage
	concurrency int
}

// New returns a service; concurrency below 1 means DefaultConcurrency.
func New(api API, store Storage, concurrency int) *Service {
	if concurrency < 1 {
		concurrency = DefaultConcurrency
	}
	return &Service{api: api, store: store, concurrency: concurrency}
}

// Cached returns the cached models merged with local jobs, without a request.
func (s *Service) Cached(ctx context.Context) ([]Model, error) {
	cache, err := s.cache(ctx)
	if err != nil {
		return nil, err
	}
	jobs, err := s.jobs(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]Model, 0, len(cache))
	for _, m := range cache {
		list = append(list, m)
	}
	return Merge(list, jobs), nil
}

// Refresh lists the account's finetunes and reads the details and status of
// each, several at once. Details never change, so cached ones are reused; the
// status is read again until it is Ready. A failure for one model is kept in
// its Error field rather than failing the list.
func (s *Service) Refresh(ctx context.Context) ([]Model, error) {
	var mine bfl.MyFinetunes
	if err := s.api.Get(ctx, "my_finetunes", nil, &mine); err != nil {
		return nil, fmt.Errorf("list finetunes: %w", err)
	}
	cache, err := s.cache(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]Model, len(mine.Finetunes))
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for i, id := range mine.Finetunes {
		m, ok := cache[id]
		if !ok {
			m = Model{ID: id}
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			list[i] = s.load(ctx, m)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("refresh finetunes: %w", err)
	}
	listed := map[string]bool{}
	for _, m := range list {
		listed[m.ID] = true
		if err := s.store.Put(ctx, core.StoreModels, m.ID, m); err != nil {
			return nil, fmt.Errorf("cache finetune %s: %w", m.ID, err)
		}
	}
	for id := range cache {
		if !listed[id] { // deleted elsewhere
			if err := s.store.Delete(ctx, core.StoreModels, id); err != nil {
				return nil, fmt.Errorf("drop finetune %s from the cache: %w", id, err)
			}
		}
	}
	jobs, err := s.jobs(ctx)
	if err != nil {
		return nil, err
	}
	return Merge(list, jobs), nil
}

// load fills in what m lacks: details once, status until Ready.
func (s *Service) load(ctx context.Context, m Model) Model {
	m.Error = ""
	if m.Details == nil {
		var d bfl.FinetuneDetails
		if err := s.api.Get(ctx, "finetune_details", url.Values{"finetune_id": {m.ID}}, &d); err != nil {
			m.Error = fmt.Sprintf("details: %v", err)
		} else {
			m = m.withDetails(d.Details)
		}
	}
	if m.Status != bfl.StatusReady {
		st, err := s.Status(ctx, m.ID)
		if err != nil {
			m.Error = joinErr(m.Error, fmt.Sprintf("status: %v", err))
		} else {
			m.Status, m.Progress = st.Status, st.Progress
		}
	}
	return m
}

// TrainingStatus is a finetune's state from get_result.
type TrainingStatus struct {
	Status   bfl.Status
	Progress *float64
}

// Status reads the training task of a finetune (its id is the task id). A
// finetune the account lists whose training record BFL has already forgotten
// ("Task not found") finished long ago, so it counts as Ready.
func (s *Service) Status(ctx context.Context, id string) (TrainingStatus, error) {
	var r bfl.ResultResponse
	if err := s.api.Get(ctx, "get_result", url.Values{"id": {id}}, &r); err != nil {
		return TrainingStatus{}, fmt.Errorf("status of finetune %s: %w", id, err)
	}
	st := TrainingStatus{Status: r.Status, Progress: r.Percent()}
	if st.Status == bfl.StatusTaskNotFound {
		st.Status = bfl.StatusReady
	}
	return st, nil
}

// Recheck reads a model's status again and caches it; Generate uses it before
// refusing a model that was training when the list was read.
func (s *Service) Recheck(ctx context.Context, m Model) (Model, error) {
	st, err := s.Status(ctx, m.ID)
	if err != nil {
		return m, err
	}
	m.Status, m.Progress = st.Status, st.Progress
	if m.Local && m.Details == nil {
		return m, nil // not in the account's list yet: the jobs store owns it
	}
	if err := s.store.Put(ctx, core.StoreModels, m.ID, m); err != nil {
		return m, fmt.Errorf("cache finetune %s: %w", m.ID, err)
	}
	return m, nil
}

// Delete deletes the finetune on BFL and drops it from the cache, and from
// the jobs store if it was trained here: the list merges local jobs in, and
// would show the deleted model again as Ready. A finetune BFL no longer
// knows (404) is already gone, which is what the user asked for.
func (s *Service) Delete(ctx context.Context, id string) error {
	var res bfl.DeleteFinetuneResponse
	err := s.api.Post(ctx, "delete_finetune", map[string]string{"finetune_id": id}, &res)
	var apiErr *core.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound) {
		return fmt.Errorf("delete finetune %s: %w", id, err)
	}
	for _, st := range []string{core.StoreModels, core.StoreJobs} {
		if err := s.store.Delete(ctx, st, id); err != nil && !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("drop finetune %s from %s: %w", id, st, err)
		}
	}
	return nil
}

func (s *Service) cache(ctx context.Context) (map[string]Model, error) {
	raw, err := s.store.List(ctx, core.StoreModels)
	if err != nil {
		return nil, fmt.Errorf("read the model cache: %w", err)
	}
	out := make(map[string]Model, len(raw))
	for _, r := range raw {
		var m Model
		if err := json.Unmarshal(r, &m); err != nil || m.ID == "" {
			continue // an unreadable cache entry is refetched, not fatal
		}
		out[m.ID] = m
	}
	return out, nil
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// withDetails copies the known keys of finetune_details into the model's columns.
// BFL documents the object as free-form, so every read is tolerant of type.
func (m Model) withDetails(d map[string]any) Model {
	if d == nil {
		d = map[string]any{}
	}
	m.Details = d
	m.Name = str(d["finetune_comment"])
	m.TriggerWord = str(d["trigger_word"])
	m.Mode = str(d["mode"])
	m.Type = str(d["finetune_type"])
	m.Priority = str(d["priority"])
	if n, ok := num(d["lora_rank"]); ok {
		m.Rank = int(n)
	}
	if n, ok := num(d["iterations"]); ok {
		m.Iterations = int(n)
	}
	if n, ok := num(d["learning_rate"]); ok {
		m.LearningRate = &n
	}
	m.Created = parseTime(d["timestamp"])
	return m
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// parseTime reads a timestamp as RFC 3339 (with or without zone) or Unix seconds.
func parseTime(v any) time.Time {
	switch x := v.(type) {
	case float64:
		return time.Unix(int64(x), 0).UTC()
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02 15:04:05"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC()
			}
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return time.Unix(int64(f), 0).UTC()
		}
	}
	return time.Time{}
}
