// Package generate is the Generate tab: pick a finetuned model and an
// endpoint, fill the form the catalog describes, generate (one image, N seed
// variations or a strength by seed grid), watch each task to its end, and keep
// every image in the gallery below with the request that made it.
package generate

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/inference"
	"github.com/fluxforge/fluxforge/app/service/models"
	"github.com/fluxforge/fluxforge/app/ui/frame"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

// defaultEndpoint is what the form opens with: the endpoint in both API snapshots
// that takes any aspect ratio.
const defaultEndpoint = "flux-pro-1.1-ultra-finetuned"

// taskTimeout bounds one generation from submit to stored image, well past the
// poller's own deadline so the poller decides.
const taskTimeout = 20 * time.Minute

// Page is the Generate tab; the shell renders it with New.
type Page struct {
	app.Compo

	c   *container.Container
	ctx app.Context // the component's own context, saved in OnMount

	models      *models.Service
	gallery     *gallery.Gallery
	infer       *inference.Service
	unsubscribe func()

	modelList []models.Model
	modelID   string
	endpoint  string
	values    map[string]string
	images    map[string]inference.Image
	inputURLs map[string]string // previews of the input images
	seedLock  bool
	seedValue string
	errs      map[string]string // per form field, from validation or a 422
	formErr   string            // a refusal or submit error
	busy      int               // submits not yet answered

	batchN        string
	gridStrengths string
	gridSeeds     string

	mask maskEditor

	tasks   []string // ids of this session's and resumed tasks, newest first
	records []gallery.Record
	urls    map[string]string // record id -> blob URL of its image
	filter  string
	viewing string
	compare []string
}

// New returns the tab's root component for the shell to render.
func New(c *container.Container) app.Composer {
	return &Page{
		c: c, endpoint: defaultEndpoint,
		values: map[string]string{}, images: map[string]inference.Image{}, inputURLs: map[string]string{},
		errs: map[string]string{}, urls: map[string]string{},
		batchN: "4", gridStrengths: "0.8, 1.0, 1.2", gridSeeds: "2",
	}
}

// OnNav reads the model to preselect ("Generate with this model") when the
// URL changes while the tab is shown; OnMount reads it when the tab appears.
func (p *Page) OnNav(ctx app.Context) { p.modelFromURL(ctx) }

func (p *Page) modelFromURL(ctx app.Context) {
	if id := ctx.Page().URL().Query().Get("model"); id != "" {
		p.modelID = id
	}
}

// OnMount takes the app's services, loads models and gallery, and listens to
// every task's changes. The container's inference service resumed the tasks a
// reload interrupted when the app started, and follows them whichever tab is
// open. It runs only in the browser.
func (p *Page) OnMount(ctx app.Context) {
	p.ctx = ctx
	p.modelFromURL(ctx)
	p.models, p.gallery, p.infer = p.c.Models(), p.c.Gallery(), p.c.Inference()
	p.unsubscribe = p.infer.Subscribe(p.onUpdate)
	ctx.Async(func() {
		cached, err := p.models.Cached(ctx)
		p.loadGallery()
		if err == nil {
			frame.Dispatch(p.ctx, func(app.Context) { p.setModels(cached) })
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		fresh, err := p.models.Refresh(rctx)
		cancel()
		frame.Dispatch(p.ctx, func(ctx app.Context) {
			if err != nil {
				notify.Fail(ctx, err)
				return
			}
			p.setModels(fresh)
		})
	})
}

// OnDismount stops listening to the tasks (which go on) and frees the blob
// URLs; images stay in storage.
func (p *Page) OnDismount() {
	if p.unsubscribe != nil {
		p.unsubscribe()
	}
	for _, u := range p.urls {
		revokeURL(u)
	}
	for _, u := range p.inputURLs {
		revokeURL(u)
	}
}

func (p *Page) setModels(list []models.Model) {
	p.modelList = list
	if _, ok := models.Find(list, p.modelID); ok {
		return
	}
	// Default to the newest model that can generate.
	for _, m := range list {
		if ok, _ := m.Readiness(); ok {
			p.modelID = m.ID
			return
		}
	}
	if len(list) > 0 && p.modelID == "" {
		p.modelID = list[0].ID
	}
}

func (p *Page) model() (models.Model, bool) { return models.Find(p.modelList, p.modelID) }

// endpoints lists the generators the flags allow.
func (p *Page) endpoints() []bfl.Endpoint {
	return bfl.Generators(p.c.Flags().Enabled(core.FlagLegacyEndpoints))
}

func (p *Page) currentEndpoint() bfl.Endpoint {
	for _, ep := range p.endpoints() {
		if ep.Name == p.endpoint {
			return ep
		}
	}
	ep, _ := bfl.Lookup(defaultEndpoint)
	return ep
}

// loadGallery reads the records and makes blob URLs for their images. Call it from ctx.Async.
func (p *Page) loadGallery() {
	ctx := p.ctx
	recs, err := p.gallery.List(ctx, "")
	if err != nil {
		frame.Dispatch(p.ctx, func(ctx app.Context) { notify.Fail(ctx, err) })
		return
	}
	urls := map[string]string{}
	for _, r := range recs {
		if !r.HasImage() {
			continue
		}
		data, mt, err := p.gallery.Image(ctx, r)
		if err != nil {
			continue // shown without a thumbnail; the record still says what was asked
		}
		urls[r.ID] = objectURL(data, mt)
	}
	frame.Dispatch(p.ctx, func(app.Context) {
		for id, u := range p.urls {
			revokeURL(u)
			delete(p.urls, id)
		}
		p.records, p.urls = recs, urls
	})
}

// onUpdate receives task records from any goroutine and applies them on the UI goroutine.
func (p *Page) onUpdate(r gallery.Record) {
	var data []byte
	var mt string
	if r.HasImage() {
		data, mt, _ = p.gallery.Image(p.ctx, r)
	}
	frame.Dispatch(p.ctx, func(app.Context) {
		if !slices.Contains(p.tasks, r.ID) {
			p.tasks = append([]string{r.ID}, p.tasks...)
		}
		if i := slices.IndexFunc(p.records, func(x gallery.Record) bool { return x.ID == r.ID }); i >= 0 {
			p.records[i] = r
		} else {
			p.records = append([]gallery.Record{r}, p.records...)
		}
		if len(data) > 0 && p.urls[r.ID] == "" {
			p.urls[r.ID] = objectURL(data, mt)
		}
		if r.Status == bfl.StatusReady && r.Seed != nil && !p.seedLock {
			p.seedValue = strconv.FormatInt(*r.Seed, 10) // the seed used, ready to lock
		}
	})
}

func (p *Page) record(id string) (gallery.Record, bool) {
	i := slices.IndexFunc(p.records, func(r gallery.Record) bool { return r.ID == id })
	if i < 0 {
		return gallery.Record{}, false
	}
	return p.records[i], true
}

// showError puts an error where the user looks: on its field, or above the button.
func (p *Page) showError(err error) {
	var ve *core.ValidationError
	var ae *core.APIError
	var nr *inference.NotReadyError
	switch {
	case errors.As(err, &nr):
		p.formErr = nr.Reason
	case errors.As(err, &ve):
		for k, v := range ve.Fields {
			p.errs[k] = v
		}
		p.formErr = notify.Message(err)
	case errors.As(err, &ae) && ae.Field != "":
		p.errs[ae.Field] = ae.Message
		p.formErr = ae.Message
	default:
		p.formErr = notify.Message(err)
	}
}

// Render lays out the form, the results and the gallery.
func (p *Page) Render() app.UI {
	return app.Section().ID("tab-generate").Class("tab").Body(
		app.H2().Text("Generate"),
		p.renderForm(),
		p.renderResults(),
		p.renderGallery(),
		app.If(p.viewing != "", p.renderViewer),
		app.If(len(p.compare) == 2, p.renderCompare),
	)
}
