package finetuning

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// uploader is the part of the API client that sends the training request.
type uploader interface {
	resultSource
	PostJSON(ctx context.Context, endpoint string, body []byte, progress func(sent, total int64), out any) error
}

// Service starts trainings, follows their jobs to the end and keeps the
// draft. One serves the whole app, so polling goes on whichever tab is open.
type Service struct {
	api    uploader
	Jobs   *Tracker
	Drafts *Drafts
	now    func() time.Time
	// life bounds the polling goroutines; the app's lasts as long as the page.
	life context.Context
}

// New returns the finetuning service; its jobs are followed until life ends.
func New(life context.Context, api uploader, store blobStore) *Service {
	return &Service{api: api, Jobs: NewTracker(api, store), Drafts: NewDrafts(store), now: time.Now, life: life}
}

// Resume follows, in the background, every stored job a previous session
// left unfinished. Call it once per app start: a job already followed is
// skipped, but every call lists the store again.
func (s *Service) Resume() {
	// Errors are on each job's record; a store that cannot be listed is
	// reported where the tab lists the jobs.
	go func() { _ = s.Jobs.Resume(s.life) }()
}

// StartOptions are the per-call hooks of Start.
type StartOptions struct {
	Webhooks bool
	// Progress reports upload progress in bytes.
	Progress func(sent, total int64)
	// Yield is called about every MB while packing so the page stays responsive.
	Yield func()
}

// Start validates the form and the dataset, packs and uploads them, saves
// the new job and only then clears the draft. Once BFL has accepted, the job
// is followed in the background until it ends, even if ctx ends first. Errors: *core.ValidationError
// for the form, ErrNotReady for the dataset, *core.APIError from the upload
// (its Field names the form field of a 422). The request is never retried:
// BFL may have accepted, and charged for, an upload that failed late.
//
// When the upload succeeded but the job could not be saved, Start returns
// the job and the error, so the caller can still show it; it is followed
// all the same.
func (s *Service) Start(ctx context.Context, d *Dataset, form Form, o StartOptions) (Job, error) {
	fields, err := form.Fields(o.Webhooks)
	if err != nil {
		return Job{}, err
	}
	body, err := Pack(d, form.Trigger(), fields, o.Yield)
	if err != nil {
		return Job{}, err
	}
	var res bfl.AsyncResponse
	err = s.api.PostJSON(ctx, Endpoint, body, o.Progress, &res)
	body = nil // the envelope is tens of MB; let it go before polling starts
	if err != nil {
		return Job{}, fmt.Errorf("start training: %w", err)
	}
	id := res.TaskID()
	if id == "" {
		return Job{}, fmt.Errorf("start training: BFL answered without a task id")
	}
	job := Job{
		ID: id, Name: strings.TrimSpace(form[FieldComment]), TriggerWord: form.Trigger(),
		Mode: form[FieldMode], Type: form.Type(), Status: bfl.StatusPending,
		Started: s.now(), PollingURL: res.PollingURL,
	}
	if res.Status != "" {
		job.Status = res.Status
	}
	// BFL has the training, and charged for it: its record is kept and the
	// draft cleared even if the caller has stopped waiting (the user left
	// the tab as the answer came), or the draft would invite a second start.
	ctx = context.WithoutCancel(ctx)
	saveErr := s.Jobs.Save(ctx, job)
	// After the save: the follower's first record must not be overwritten
	// by this older one.
	go func() { _, _ = s.Jobs.Follow(s.life, job) }()
	if saveErr != nil {
		return job, saveErr
	}
	if err := s.Drafts.Clear(ctx); err != nil {
		return job, err
	}
	return job, nil
}
