package finetuning

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/core"
)

// draftKey is the finetune draft's key in core.StoreDrafts (other tabs keep
// their own drafts there under other keys).
const draftKey = "finetune"

// Draft is the unsent work: the dataset's images (their bytes as blobs, the
// rest in the record) and the form, saved on every change so that a reload
// or a failed upload loses nothing.
type Draft struct {
	Images  []draftImage      `json:"images"`
	Orphans map[string]string `json:"orphans,omitempty"`
	Form    Form              `json:"form"`
	Saved   time.Time         `json:"saved"`
}

// draftImage is an image's record in a draft: everything but its bytes,
// which live in the blob named Blob.
type draftImage struct {
	Image
	Blob string `json:"blob"`
}

// blobStore is the part of storage that keeps image bytes.
type blobStore interface {
	records
	PutBlob(ctx context.Context, key string, data []byte, contentType string) error
	GetBlob(ctx context.Context, key string) ([]byte, string, error)
	DeleteBlob(ctx context.Context, key string) error
}

// Drafts saves and restores the finetune draft. Blobs are keyed by the sent
// bytes' digest, so re-saving a draft writes only images that are new.
type Drafts struct {
	store blobStore
	// mu serialises saves: a slow save must not interleave with the next one.
	mu sync.Mutex
}

// NewDrafts returns a draft keeper over store.
func NewDrafts(store blobStore) *Drafts { return &Drafts{store: store} }

func blobKey(im Image) string { return "draft/" + Digest(im.Data) }

// Save writes the dataset's new image blobs, then the record, then deletes
// blobs the previous record used and this one does not: a crash in between
// leaves at worst an orphan blob, never a record pointing at nothing.
func (s *Drafts) Save(ctx context.Context, d *Dataset, form Form) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev Draft
	if err := s.store.Get(ctx, core.StoreDrafts, draftKey, &prev); err != nil && !errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("save draft: read previous: %w", err)
	}
	had := map[string]bool{}
	for _, im := range prev.Images {
		had[im.Blob] = true
	}
	keep := map[string]bool{}
	rec := Draft{Images: make([]draftImage, len(d.Images)), Orphans: d.Orphans, Form: form, Saved: time.Now()}
	for i, im := range d.Images {
		k := blobKey(im)
		if !had[k] && !keep[k] {
			if err := s.store.PutBlob(ctx, k, im.Data, im.Format.MIME()); err != nil {
				return fmt.Errorf("save draft image %s: %w", im.Name, err)
			}
		}
		keep[k] = true
		rec.Images[i] = draftImage{Image: im, Blob: k}
	}
	if err := s.store.Put(ctx, core.StoreDrafts, draftKey, rec); err != nil {
		return fmt.Errorf("save draft: %w", err)
	}
	for k := range had {
		if !keep[k] {
			if err := s.store.DeleteBlob(ctx, k); err != nil && !errors.Is(err, core.ErrNotFound) {
				return fmt.Errorf("save draft: drop unused image: %w", err)
			}
		}
	}
	return nil
}

// Load restores the draft; with none saved it returns an empty dataset and a
// new form. An image whose blob is gone is dropped, and reported in the error
// together with the rest that could be restored.
func (s *Drafts) Load(ctx context.Context) (*Dataset, Form, error) {
	var rec Draft
	if err := s.store.Get(ctx, core.StoreDrafts, draftKey, &rec); err != nil {
		if errors.Is(err, core.ErrNotFound) {
			return &Dataset{}, NewForm(), nil
		}
		return &Dataset{}, NewForm(), fmt.Errorf("load draft: %w", err)
	}
	d := &Dataset{Orphans: rec.Orphans}
	var missing []string
	for _, rim := range rec.Images {
		data, _, err := s.store.GetBlob(ctx, rim.Blob)
		if err != nil {
			missing = append(missing, rim.Name)
			continue
		}
		rim.Image.Data = data
		d.Images = append(d.Images, rim.Image)
	}
	form := rec.Form
	if form == nil {
		form = NewForm()
	}
	if len(missing) > 0 {
		return d, form, fmt.Errorf("load draft: the saved bytes of %s are gone: %w", list(missing), core.ErrNotFound)
	}
	return d, form, nil
}

// Clear deletes the draft and its blobs; it runs only after a training
// started and its job was saved.
func (s *Drafts) Clear(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rec Draft
	if err := s.store.Get(ctx, core.StoreDrafts, draftKey, &rec); err != nil {
		if errors.Is(err, core.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("clear draft: %w", err)
	}
	if err := s.store.Delete(ctx, core.StoreDrafts, draftKey); err != nil {
		return fmt.Errorf("clear draft: %w", err)
	}
	for _, im := range rec.Images {
		if err := s.store.DeleteBlob(ctx, im.Blob); err != nil && !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("clear draft image %s: %w", im.Name, err)
		}
	}
	return nil
}

// Debouncer runs the latest function given to Trigger once no new call has
// come for Delay, so typing a caption saves once, not per keystroke.
type Debouncer struct {
	Delay   time.Duration
	mu      sync.Mutex
	timer   *time.Timer
	pending func()
}

// Trigger schedules fn, replacing any function still waiting.
func (d *Debouncer) Trigger(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.pending = fn
	d.timer = time.AfterFunc(d.Delay, func() {
		if run := d.take(); run != nil {
			run()
		}
	})
}

// take returns the waiting function, if any, and forgets it.
func (d *Debouncer) take() func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	fn := d.pending
	d.pending = nil
	return fn
}

// Stop drops the waiting function, if any: starting a training must not be
// followed by a late save that brings the sent draft back.
func (d *Debouncer) Stop() { d.take() }

// Flush runs the waiting function now, if any, on its own goroutine, so
// leaving the tab right after an edit still saves it.
func (d *Debouncer) Flush() {
	if run := d.take(); run != nil {
		go run()
	}
}
