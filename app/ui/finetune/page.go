// Package finetune is the Finetune tab: the dataset studio, the training
// form and the jobs started from this browser.
package finetune

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

// draftDelay debounces draft saves: typing a caption saves once it pauses.
const draftDelay = 600 * time.Millisecond

// maxCaptionBytes refuses .txt files that cannot be captions before reading them.
const maxCaptionBytes = 64 << 10

// progressEvery throttles upload-progress re-renders.
const progressEvery = 100 * time.Millisecond

// Page is the Finetune tab; the shell renders it with New.
type Page struct {
	app.Compo

	c           *container.Container
	svc         *finetuning.Service
	ctx         app.Context // the component's own context, saved in OnMount
	cancel      context.CancelFunc
	run         context.Context // ends when the tab is left (polling does not)
	unsubscribe func()

	restored bool // the draft has been loaded
	ds       *finetuning.Dataset
	form     finetuning.Form
	thumbs   map[string]string // image name -> object URL
	adding   int               // files still being read or downscaled
	over     bool              // files are dragged over the drop zone
	addErrs  []string
	saver    finetuning.Debouncer
	saves    int // drafts saved since the tab opened

	fieldErrs map[string]string
	startErr  string
	packing   bool
	uploading bool
	sent      int64
	total     int64

	jobs []finetuning.Job
	now  time.Time
}

// New returns the tab's root component for the shell to render.
func New(c *container.Container) app.Composer {
	return &Page{c: c, ds: &finetuning.Dataset{}, form: finetuning.NewForm(), thumbs: map[string]string{},
		saver: finetuning.Debouncer{Delay: draftDelay}}
}

// OnMount restores the draft and the jobs and listens to their changes. The
// container's service follows the jobs, so polling goes on while the user
// is on another tab, and was resumed once when the app started.
func (p *Page) OnMount(ctx app.Context) {
	// A re-mounted instance starts over from storage, the only source of truth.
	p.ds, p.form, p.restored, p.jobs, p.saves = &finetuning.Dataset{}, finetuning.NewForm(), false, nil, 0
	p.ctx = ctx
	p.run, p.cancel = context.WithCancel(ctx)
	p.now = time.Now()
	if p.c == nil {
		p.startErr = "The app's services are not available."
		return
	}
	// Goroutines get this mount's context as a value, never through p.
	p.svc = p.c.Finetuning()
	svc, run := p.svc, p.run
	p.unsubscribe = svc.Jobs.Subscribe(func(j finetuning.Job) {
		ctx.Dispatch(func(app.Context) { p.upsert(j) })
	})
	ctx.Async(func() {
		ds, form, err := svc.Drafts.Load(run)
		ctx.Dispatch(func(ctx app.Context) {
			p.restore(ds, form)
			if err != nil {
				notify.Show(ctx, notify.Error, "Part of your saved draft could not be restored: "+notify.Message(err))
			}
		})
	})
	ctx.Async(func() {
		jobs, err := svc.Jobs.Jobs(run)
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				notify.Fail(ctx, err)
			}
			p.jobs = jobs
		})
	})
	ctx.Async(func() { p.tick(ctx, run) })
}

// OnDismount saves a pending draft, stops listening to the jobs (which go
// on polling) and frees thumbnails.
func (p *Page) OnDismount() {
	p.saver.Flush()
	if p.cancel != nil {
		p.cancel()
	}
	if p.unsubscribe != nil {
		p.unsubscribe()
	}
	for name, u := range p.thumbs {
		revokeURL(u)
		delete(p.thumbs, name)
	}
}

// tick refreshes elapsed times once a second while a job runs.
func (p *Page) tick(ctx app.Context, run context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-run.Done():
			return
		case now := <-t.C:
			ctx.Dispatch(func(ctx app.Context) {
				if !p.anyRunning() {
					ctx.PreventUpdate()
					return
				}
				p.now = now
			})
		}
	}
}

func (p *Page) anyRunning() bool {
	for _, j := range p.jobs {
		if !j.Done() {
			return true
		}
	}
	return false
}

func (p *Page) restore(ds *finetuning.Dataset, form finetuning.Form) {
	p.restored = true
	merged := len(p.ds.Images) > 0 || len(p.ds.Orphans) > 0
	// Files added while the draft loaded come after the restored ones.
	for _, im := range p.ds.Images {
		ds.AddImage(im)
	}
	for name, text := range p.ds.Orphans {
		ds.AddCaption(name, text)
	}
	p.ds = ds
	for k, v := range p.form {
		if form[k] == "" {
			form[k] = v
		}
	}
	p.form = form
	for _, im := range ds.Images {
		if _, ok := p.thumbs[im.Name]; !ok {
			p.thumbs[im.Name] = objectURL(im.Data, im.Format.MIME())
		}
	}
	if merged {
		p.changed()
	}
}

// changed saves a snapshot of the draft once edits pause. Until the saved
// draft is loaded nothing is written, so it cannot be overwritten unread.
func (p *Page) changed() {
	if save := p.snapshotSave(); save != nil {
		p.saver.Trigger(save)
	}
}

// saveNow saves at once, for moments that matter (a refused upload): the
// user may reload right after.
func (p *Page) saveNow() {
	if save := p.snapshotSave(); save != nil {
		p.saver.Stop()
		p.ctx.Async(save)
	}
}

// snapshotSave returns a function that saves a snapshot taken now, or nil when
// nothing may be saved yet.
func (p *Page) snapshotSave() func() {
	if p.svc == nil || !p.restored {
		return nil
	}
	ds, form, svc, ctx := p.ds.Clone(), p.form.Clone(), p.svc, p.ctx
	// Leaving the tab cancels p.run, but not a save already decided on.
	save := context.WithoutCancel(p.run)
	return func() {
		err := svc.Drafts.Save(save, ds, form)
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				notify.Show(ctx, notify.Error, "Your draft could not be saved, so a reload would lose it: "+notify.Message(err))
				return
			}
			p.saves++
		})
	}
}

// addFiles reads, unpacks and downscales files one at a time (bounding the
// memory held at once), adding each to the dataset as it is ready.
func (p *Page) addFiles(files []droppedFile) {
	if len(files) == 0 {
		return
	}
	p.adding += len(files)
	p.addErrs = nil
	ctx := p.ctx
	ctx.Async(func() {
		for _, f := range files {
			err := p.addOne(ctx, f)
			ctx.Dispatch(func(ctx app.Context) {
				p.adding--
				if err != nil {
					p.addErrs = append(p.addErrs, err.Error())
				}
				if p.adding == 0 {
					p.changed()
				}
			})
		}
	})
}

// addOne runs on an Async goroutine; it hands results to the UI goroutine.
func (p *Page) addOne(ctx app.Context, f droppedFile) error {
	switch {
	case strings.HasPrefix(f.name, "."):
		return nil
	case finetuning.IsCaptionName(f.name):
		if f.blob.Get("size").Int() > maxCaptionBytes {
			return fmt.Errorf("%s is too large for a caption (over %d KB)", f.name, maxCaptionBytes>>10)
		}
		data, err := blobBytes(f.blob)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		ctx.Dispatch(func(app.Context) { p.ds.AddCaption(f.name, string(data)) })
		return nil
	case finetuning.IsZIPName(f.name):
		data, err := blobBytes(f.blob)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		entries, err := finetuning.ExtractZIP(data, finetuning.DefaultZIPLimits)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		var errs []error
		for _, e := range entries {
			blob := newBlob(e.Data, finetuning.Sniff(e.Data).MIME())
			if err := p.addOne(ctx, droppedFile{name: e.Name, blob: blob}); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	im, err := prepare(f.name, f.blob)
	if err != nil {
		return err
	}
	ctx.Dispatch(func(app.Context) {
		name := p.ds.AddImage(im)
		p.thumbs[name] = objectURL(im.Data, im.Format.MIME())
	})
	return nil
}

func (p *Page) removeImage(name string) {
	if p.ds.Remove(name) {
		revokeURL(p.thumbs[name])
		delete(p.thumbs, name)
		p.changed()
	}
}

func (p *Page) setField(name, value string) {
	p.form[name] = value
	delete(p.fieldErrs, name)
	p.changed()
}

// start checks, packs and uploads. Validation errors land on their fields;
// API errors are explained in the banner above the button.
func (p *Page) start(ctx app.Context, _ app.Event) {
	if p.svc == nil || p.packing || p.uploading {
		return
	}
	if msg := p.blockedReason(); msg != "" {
		p.startErr = msg
		return
	}
	askNotificationPermission()
	p.saver.Stop()
	p.fieldErrs, p.startErr = nil, ""
	p.packing, p.sent, p.total = true, 0, 0
	ds, form, svc, run, pctx := p.ds.Clone(), p.form.Clone(), p.svc, p.run, p.ctx
	webhooks := p.c.Flags().Enabled(core.FlagWebhooks)
	ctx.Async(func() {
		var last time.Time
		opts := finetuning.StartOptions{
			Webhooks: webhooks,
			Yield:    func() { time.Sleep(time.Millisecond) },
			Progress: func(sent, total int64) {
				if time.Since(last) < progressEvery && sent < total {
					return
				}
				last = time.Now()
				pctx.Dispatch(func(app.Context) { p.packing, p.uploading, p.sent, p.total = false, true, sent, total })
			},
		}
		job, err := svc.Start(run, ds, form, opts)
		pctx.Dispatch(func(ctx app.Context) {
			p.packing, p.uploading = false, false
			if job.ID != "" {
				p.started(ctx, job)
				if err != nil {
					// BFL accepted (and charged); only the local record failed.
					p.startErr = "The training started, but this browser could not save its record (" +
						notify.Message(err) + "); it is still followed while the app is open and is listed under Models."
				}
				return
			}
			if err != nil {
				if field := p.failed(err); field != "" {
					ctx.Defer(func(app.Context) { app.Window().ScrollToID("field-" + field) })
				}
				p.saveNow() // the draft stays, with any edit made meanwhile
			}
		})
	})
}

func (p *Page) blockedReason() string {
	if p.adding > 0 {
		return "Wait until every file has been read."
	}
	if b := finetuning.Blocking(p.ds.Checks(p.form.Trigger())); len(b) > 0 {
		return "Fix the dataset first: " + b[0].Message
	}
	return ""
}

func (p *Page) started(ctx app.Context, job finetuning.Job) {
	if p.jobIndex(job.ID) < 0 { // a change from the service may have listed it already
		p.upsert(job)
	}
	for name, u := range p.thumbs {
		revokeURL(u)
		delete(p.thumbs, name)
	}
	p.ds = &finetuning.Dataset{}
	delete(p.form, finetuning.FieldComment)
	p.changed() // the next draft starts from the same settings
	notify.Done(ctx, fmt.Sprintf("Training %q started; it appears under Jobs.", job.Name))
	notify.RefreshCredits(ctx)
}

// failed explains a failed start; it returns the form field to bring into
// view, if a field is to blame.
func (p *Page) failed(err error) string {
	var ve *core.ValidationError
	var ae *core.APIError
	switch {
	case errors.As(err, &ve):
		p.fieldErrs = ve.Fields
		p.startErr = "Some fields need attention; nothing was sent."
		for name := range ve.Fields {
			return name
		}
	case errors.As(err, &ae) && ae.Field != "":
		p.fieldErrs = map[string]string{ae.Field: fieldMessage(ae)}
		p.startErr = "BFL refused the " + label(ae.Field) + " field (marked in the form). Your images and form are kept."
		return ae.Field
	case errors.As(err, &ae):
		p.startErr = ae.Message + " Your images and form are kept."
	case errors.Is(err, finetuning.ErrNotReady):
		p.startErr = err.Error()
	default:
		p.startErr = "The training could not be started: " + notify.Message(err) + " Your images and form are kept."
	}
	return ""
}

// fieldMessage is what BFL said about the field a 422 names, without the
// field's name (the message sits under it), or the client's whole sentence.
func fieldMessage(ae *core.APIError) string {
	if ae.Detail != nil {
		for _, is := range ae.Detail.Issues {
			if is.Field() == ae.Field && is.Msg != "" {
				return is.Msg + "."
			}
		}
	}
	return ae.Message
}

// upsert shows a job's change, listing a job not listed yet first.
func (p *Page) upsert(j finetuning.Job) {
	if i := p.jobIndex(j.ID); i >= 0 {
		p.jobs[i] = j
		return
	}
	p.jobs = append([]finetuning.Job{j}, p.jobs...)
}

// jobIndex is where the job with this id is listed, or -1.
func (p *Page) jobIndex(id string) int {
	return slices.IndexFunc(p.jobs, func(j finetuning.Job) bool { return j.ID == id })
}

// Announce raises a browser notification and a toast when a training ends.
// The shell installs it, so the end is announced on whichever tab is open.
// It runs on a polling goroutine: both are safe from any goroutine.
func Announce(ctx app.Context, j finetuning.Job) {
	title := fmt.Sprintf("Training %q: %s", j.Name, j.Status)
	body := "Your model is ready to generate with."
	if j.Status != "Ready" {
		body = j.LastError
	}
	if ctx.Notifications().Permission() == app.NotificationGranted {
		ctx.Notifications().New(app.Notification{Title: title, Body: body, Path: "/finetune"})
	}
	if j.Status == "Ready" {
		notify.Done(ctx, title)
	} else {
		notify.Show(ctx, notify.Error, title+". "+body)
	}
}

// askNotificationPermission asks once, on the click that starts the first
// training: browsers only honour the request during a user gesture.
func askNotificationPermission() {
	n := app.Window().Get("Notification")
	if n.Truthy() && n.Get("permission").String() == "default" {
		n.Call("requestPermission")
	}
}

func generateLink(id string) string { return "/generate?model=" + url.QueryEscape(id) }

// label is a field's name as the form shows it.
func label(field string) string {
	s := strings.ReplaceAll(field, "_", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}
