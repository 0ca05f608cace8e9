// Package gallery keeps every generated image with the whole request that made
// it, so a picture can always be traced back, made again or exported.
//
// Records live in the models' storage store core.StoreGallery under the task id;
// images (and the input images a request carried) are blobs. A record is written
// when the task is submitted, so a reload while it runs loses nothing, and again
// when it ends.
package gallery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// Record is one generation: what was asked, what came back and where the image is.
type Record struct {
	ID         string `json:"id"` // BFL's task id
	Endpoint   string `json:"endpoint"`
	ModelID    string `json:"model_id"`
	ModelName  string `json:"model_name,omitempty"`
	Prompt     string `json:"prompt"`
	Seed       *int64 `json:"seed,omitempty"` // the seed used: the result's, else the request's
	SeedLocked bool   `json:"seed_locked,omitempty"`
	// Params holds every body field sent except base64 images, which are blobs named in Inputs.
	Params     map[string]any    `json:"params"`
	Inputs     map[string]string `json:"inputs,omitempty"` // field -> blob key
	Cost       *float64          `json:"cost,omitempty"`   // credits, when the submit answered it
	PollingURL string            `json:"polling_url,omitempty"`
	Status     bfl.Status        `json:"status"`
	Progress   *float64          `json:"progress,omitempty"` // 0..100
	Reason     string            `json:"reason,omitempty"`   // why a task did not give an image
	Details    map[string]any    `json:"details,omitempty"`
	Result     *bfl.ImageResult  `json:"result,omitempty"` // BFL's answer: seed, prompt, times
	BatchID    string            `json:"batch_id,omitempty"`
	Created    time.Time         `json:"created"`
	Finished   time.Time         `json:"finished,omitzero"`
	Image      string            `json:"image,omitempty"` // blob key of the result
	MediaType  string            `json:"media_type,omitempty"`
	Bytes      int               `json:"bytes,omitempty"`
}

// HasImage reports whether the record's image is stored.
func (r Record) HasImage() bool { return r.Image != "" }

// Running reports whether the task may still produce an image.
func (r Record) Running() bool { return !r.Status.Terminal() }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// FileName names a download after the model and the seed, with the image's own extension.
func (r Record) FileName() string {
	model := strings.Trim(unsafeName.ReplaceAllString(cmp.Or(r.ModelName, r.ModelID, "image"), "-"), "-.")
	seed := "noseed"
	if r.Seed != nil {
		seed = fmt.Sprint(*r.Seed)
	}
	return cmp.Or(model, "image") + "-" + seed + Extension(r.MediaType)
}

// Extension maps an image media type to a file extension (".jpg" for JPEG).
func Extension(mediaType string) string {
	mt, _, _ := mime.ParseMediaType(mediaType)
	switch mt {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/webp":
		return ".webp"
	}
	return ".img"
}

// ImageKey is the blob key of a record's result image.
func ImageKey(id string) string { return "gallery/" + id }

// InputKey is the blob key of an input image (image_prompt, image, mask, control_image).
func InputKey(id, field string) string { return "gallery/" + id + "/" + field }

// Storage is what the gallery needs of core.Storage.
type Storage interface {
	Put(ctx context.Context, store, key string, v any) error
	Get(ctx context.Context, store, key string, v any) error
	List(ctx context.Context, store string) ([]json.RawMessage, error)
	Delete(ctx context.Context, store, key string) error
	PutBlob(ctx context.Context, key string, data []byte, contentType string) error
	GetBlob(ctx context.Context, key string) ([]byte, string, error)
	DeleteBlob(ctx context.Context, key string) error
}

// Gallery reads and writes records and their images.
type Gallery struct{ s Storage }

// New returns a gallery over s.
func New(s Storage) *Gallery { return &Gallery{s: s} }

// Save writes the record.
func (g *Gallery) Save(ctx context.Context, r Record) error {
	if r.ID == "" {
		return errors.New("gallery: a record needs the task id")
	}
	if err := g.s.Put(ctx, core.StoreGallery, r.ID, r); err != nil {
		return fmt.Errorf("save gallery record %s: %w", r.ID, err)
	}
	return nil
}

// SaveImage stores the image first and then the record pointing at it, so a
// record never names a missing image.
func (g *Gallery) SaveImage(ctx context.Context, r Record, data []byte, mediaType string) (Record, error) {
	r.Image, r.MediaType, r.Bytes = ImageKey(r.ID), mediaType, len(data)
	if err := g.s.PutBlob(ctx, r.Image, data, mediaType); err != nil {
		return r, fmt.Errorf("store image of %s: %w", r.ID, err)
	}
	return r, g.Save(ctx, r)
}

// SaveInput stores an input image of a request and names it in the record.
func (g *Gallery) SaveInput(ctx context.Context, r *Record, field string, data []byte, mediaType string) error {
	key := InputKey(r.ID, field)
	if err := g.s.PutBlob(ctx, key, data, mediaType); err != nil {
		return fmt.Errorf("store %s of %s: %w", field, r.ID, err)
	}
	if r.Inputs == nil {
		r.Inputs = map[string]string{}
	}
	r.Inputs[field] = key
	return nil
}

// Get returns one record.
func (g *Gallery) Get(ctx context.Context, id string) (Record, error) {
	var r Record
	if err := g.s.Get(ctx, core.StoreGallery, id, &r); err != nil {
		return r, fmt.Errorf("gallery record %s: %w", id, err)
	}
	return r, nil
}

// Image returns the stored image of a record.
func (g *Gallery) Image(ctx context.Context, r Record) ([]byte, string, error) {
	if !r.HasImage() {
		return nil, "", fmt.Errorf("gallery record %s has no image: %w", r.ID, core.ErrNotFound)
	}
	data, mt, err := g.s.GetBlob(ctx, r.Image)
	if err != nil {
		return nil, "", fmt.Errorf("image of %s: %w", r.ID, err)
	}
	return data, mt, nil
}

// Input returns an input image of a record.
func (g *Gallery) Input(ctx context.Context, r Record, field string) ([]byte, string, error) {
	key, ok := r.Inputs[field]
	if !ok {
		return nil, "", fmt.Errorf("gallery record %s has no %s: %w", r.ID, field, core.ErrNotFound)
	}
	data, mt, err := g.s.GetBlob(ctx, key)
	if err != nil {
		return nil, "", fmt.Errorf("%s of %s: %w", field, r.ID, err)
	}
	return data, mt, nil
}

// List returns the records, newest first; with modelID set, only that model's.
func (g *Gallery) List(ctx context.Context, modelID string) ([]Record, error) {
	raw, err := g.s.List(ctx, core.StoreGallery)
	if err != nil {
		return nil, fmt.Errorf("list gallery: %w", err)
	}
	out := make([]Record, 0, len(raw))
	for _, m := range raw {
		var r Record
		if err := json.Unmarshal(m, &r); err != nil {
			return nil, fmt.Errorf("list gallery: a record does not decode: %w", err)
		}
		if modelID == "" || r.ModelID == modelID {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Delete removes a record and every blob it names. A missing blob is not an error:
// the goal, nothing left behind, is reached.
func (g *Gallery) Delete(ctx context.Context, id string) error {
	r, err := g.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	keys := []string{}
	if r.HasImage() {
		keys = append(keys, r.Image)
	}
	for _, k := range r.Inputs {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := g.s.DeleteBlob(ctx, k); err != nil && !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("delete blob %s of %s: %w", k, id, err)
		}
	}
	if err := g.s.Delete(ctx, core.StoreGallery, id); err != nil {
		return fmt.Errorf("delete gallery record %s: %w", id, err)
	}
	return nil
}
