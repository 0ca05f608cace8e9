package generate

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/inference"
	"github.com/fluxforge/fluxforge/app/ui/frame"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

func (p *Page) renderResults() app.UI {
	if len(p.tasks) == 0 {
		return app.Section().ID("results").Class("results empty")
	}
	return app.Section().ID("results").Class("results").Body(
		app.H3().Text("Results"),
		app.Div().Class("result-list grid").Body(
			app.Range(p.tasks).Slice(func(i int) app.UI {
				r, ok := p.record(p.tasks[i])
				if !ok {
					return app.Text("")
				}
				return p.renderResult(r)
			}),
		),
	)
}

func (p *Page) renderResult(r gallery.Record) app.UI {
	id := r.ID
	return app.Article().Class("result result-"+statusClass(r)).Body(
		app.If(p.urls[id] != "", func() app.UI {
			return app.Img().Class("result-image").Src(p.urls[id]).Alt("Generated image").
				OnClick(func(app.Context, app.Event) { p.viewing = id }, app.EventScope(id))
		}),
		app.P().Class("result-status").Text(statusLine(r)),
		app.If(r.Running() && r.Progress != nil, func() app.UI {
			return app.Progress().Class("result-progress").Max(100).Value(fmt.Sprintf("%.0f", *r.Progress))
		}),
		app.If(r.Seed != nil && !r.Running(), func() app.UI {
			return app.P().Class("result-seed").Textf("Seed %d", *r.Seed)
		}),
		app.If(r.Reason != "", func() app.UI { return app.P().Class("result-reason").Text(r.Reason) }),
		app.P().Class("muted").Textf("%s · %s", r.ModelName, r.Endpoint),
	)
}

func statusClass(r gallery.Record) string {
	switch {
	case r.Running():
		return "running"
	case r.HasImage():
		return "ready"
	}
	return "failed"
}

func statusLine(r gallery.Record) string {
	switch {
	case r.Running() && r.Progress != nil:
		return fmt.Sprintf("Generating… %.0f%%", *r.Progress)
	case r.Running():
		return "Generating…"
	case r.Status == bfl.StatusReady && r.HasImage():
		return "Ready"
	}
	return string(r.Status)
}

// gallery lists the records with an image, newest first, filtered by model.
func (p *Page) galleryItems() []gallery.Record {
	out := []gallery.Record{}
	for _, r := range p.records {
		if r.HasImage() && (p.filter == "" || r.ModelID == p.filter) {
			out = append(out, r)
		}
	}
	return out
}

func (p *Page) renderGallery() app.UI {
	items := p.galleryItems()
	names := map[string]string{}
	for _, r := range p.records {
		if r.HasImage() {
			names[r.ModelID] = r.ModelName
		}
	}
	ids := slices.Sorted(maps.Keys(names))
	return app.Section().ID("gallery").Class("gallery").Body(
		app.H3().Text("Gallery"),
		app.Div().Class("toolbar").Body(
			app.Label().For("gallery-filter").Text("Model"),
			app.Select().ID("gallery-filter").OnChange(func(ctx app.Context, e app.Event) {
				p.filter = ctx.JSSrc().Get("value").String()
			}).Body(
				app.Option().Value("").Selected(p.filter == "").Text("All models"),
				app.Range(ids).Slice(func(i int) app.UI {
					name := names[ids[i]]
					if name == "" {
						name = ids[i]
					}
					return app.Option().Value(ids[i]).Selected(p.filter == ids[i]).Text(name)
				}),
			),
			app.Button().ID("export-gallery").Class("btn").Text("Export ZIP").OnClick(func(app.Context, app.Event) { p.export() }),
			app.Label().Class("btn").For("import-gallery").Text("Import ZIP"),
			app.Input().ID("import-gallery").Type("file").Accept(".zip,application/zip").Class("visually-hidden").
				OnChange(func(ctx app.Context, e app.Event) { p.importArchive(ctx.JSSrc().Get("files").Index(0)) }),
		),
		app.If(len(items) == 0, func() app.UI {
			return app.P().ID("gallery-empty").Class("muted").Text("Images you generate are kept here, with how they were made.")
		}),
		app.Div().ID("gallery-grid").Class("gallery-grid thumbs").Body(
			app.Range(items).Slice(func(i int) app.UI {
				r := items[i]
				return app.Button().Class("gallery-item thumb").Aria("label", fmt.Sprintf("Open image %d", i+1)).
					OnClick(func(app.Context, app.Event) { p.viewing = r.ID }, app.EventScope(r.ID)).Body(
					app.Img().Class("thumb").Src(p.urls[r.ID]).Alt(r.Prompt).Attr("loading", "lazy"),
					app.Span().Class("caption").Textf("%s · seed %s", r.ModelName, seedText(r)),
				)
			}),
		),
	)
}

func seedText(r gallery.Record) string {
	if r.Seed == nil {
		return "–"
	}
	return strconv.FormatInt(*r.Seed, 10)
}

// params lists a record's settings for the viewer and the comparison.
func params(r gallery.Record) [][2]string {
	rows := [][2]string{
		{"Model", r.ModelName + " (" + r.ModelID + ")"},
		{"Endpoint", r.Endpoint},
		{"Prompt", r.Prompt},
		{"Seed", seedText(r)},
		{"Status", string(r.Status)},
	}
	if r.Cost != nil {
		rows = append(rows, [2]string{"Cost", fmt.Sprintf("%g credits", *r.Cost)})
	}
	rows = append(rows, [2]string{"Created", r.Created.Local().Format(time.DateTime)})
	if !r.Finished.IsZero() {
		rows = append(rows, [2]string{"Took", r.Finished.Sub(r.Created).Round(100 * time.Millisecond).String()})
	}
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		if k == "prompt" || k == "seed" || k == "finetune_id" {
			continue
		}
		rows = append(rows, [2]string{k, fmt.Sprint(r.Params[k])})
	}
	for _, k := range slices.Sorted(maps.Keys(r.Inputs)) {
		rows = append(rows, [2]string{k, "(image kept)"})
	}
	return rows
}

func (p *Page) renderViewer() app.UI {
	r, ok := p.record(p.viewing)
	if !ok {
		return app.Text("")
	}
	rows := params(r)
	inCompare := slices.Contains(p.compare, r.ID)
	return app.Aside().ID("viewer").Class("panel viewer").Aria("label", "Image details").Body(
		app.Img().ID("viewer-image").Src(p.urls[r.ID]).Alt(r.Prompt).Style("max-width", "100%"),
		app.Dl().Class("params").Body(app.Range(rows).Slice(func(i int) app.UI {
			return app.Div().Class("param").Body(app.Dt().Text(rows[i][0]), app.Dd().Text(rows[i][1]))
		})),
		app.Div().Class("actions").Body(
			app.Button().ID("download-image").Class("btn").Text("Download").OnClick(func(app.Context, app.Event) { p.download(r) }, app.EventScope(r.ID)),
			app.Button().ID("use-settings").Class("btn primary").Text("Use these settings").OnClick(func(ctx app.Context, e app.Event) { p.useSettings(ctx, r) }, app.EventScope(r.ID)),
			app.Button().ID("compare-toggle").Class("btn").Aria("pressed", fmt.Sprint(inCompare)).
				Text(map[bool]string{true: "Remove from comparison", false: "Compare"}[inCompare]).
				OnClick(func(app.Context, app.Event) { p.toggleCompare(r.ID) }, app.EventScope(r.ID)),
			app.Button().ID("delete-image").Class("btn danger").Text("Delete").OnClick(func(app.Context, app.Event) { p.deleteRecord(r.ID) }, app.EventScope(r.ID)),
			app.Button().ID("close-viewer").Class("btn").Text("Close").OnClick(func(app.Context, app.Event) { p.viewing = "" }),
		),
	)
}

func (p *Page) toggleCompare(id string) {
	if i := slices.Index(p.compare, id); i >= 0 {
		p.compare = slices.Delete(p.compare, i, i+1)
		return
	}
	p.compare = append(p.compare, id)
	if len(p.compare) > 2 {
		p.compare = p.compare[len(p.compare)-2:] // the two most recently picked
	}
	if len(p.compare) == 2 {
		p.viewing = ""
	}
}

func (p *Page) renderCompare() app.UI {
	a, okA := p.record(p.compare[0])
	b, okB := p.record(p.compare[1])
	if !okA || !okB {
		return app.Text("")
	}
	ra, rb := params(a), params(b)
	vb := map[string]string{}
	for _, row := range rb {
		vb[row[0]] = row[1]
	}
	return app.Aside().ID("compare").Class("panel compare").Aria("label", "Compare two images").Body(
		app.Div().Class("compare-images").Style("display", "grid").Style("grid-template-columns", "1fr 1fr").Style("gap", "8px").Body(
			app.Img().Src(p.urls[a.ID]).Alt(a.Prompt).Style("width", "100%"),
			app.Img().Src(p.urls[b.ID]).Alt(b.Prompt).Style("width", "100%"),
		),
		app.Table().Class("table").Body(app.TBody().Body(app.Range(ra).Slice(func(i int) app.UI {
			row := ra[i]
			other := vb[row[0]]
			return app.Tr().Class(map[bool]string{true: "diff", false: ""}[other != row[1]]).Body(
				app.Th().Text(row[0]), app.Td().Text(row[1]), app.Td().Text(other),
			)
		}))),
		app.Button().ID("close-compare").Class("btn").Text("Close comparison").OnClick(func(app.Context, app.Event) { p.compare = nil }),
	)
}

func (p *Page) download(r gallery.Record) {
	ctx := p.ctx
	ctx.Async(func() {
		data, mt, err := p.gallery.Image(ctx, r)
		frame.Dispatch(p.ctx, func(ctx app.Context) {
			if err != nil {
				notify.Fail(ctx, err)
				return
			}
			download(data, r.FileName(), mt)
		})
	})
}

// useSettings fills the form with a record's request, its seed locked, and its input images.
func (p *Page) useSettings(ctx app.Context, r gallery.Record) {
	allowed := slices.ContainsFunc(p.endpoints(), func(e bfl.Endpoint) bool { return e.Name == r.Endpoint })
	if !allowed {
		notify.Show(ctx, notify.Error, fmt.Sprintf("%s is a legacy endpoint: turn on legacy endpoints in Settings to use these settings.", r.Endpoint))
		return
	}
	p.endpoint, p.modelID = r.Endpoint, r.ModelID
	p.values = inference.FormValues(r.Params)
	delete(p.values, "finetune_id")
	delete(p.values, "seed")
	p.seedLock = r.Seed != nil
	p.seedValue = seedText(r)
	p.errs, p.formErr, p.viewing = map[string]string{}, "", ""
	for name := range p.images {
		p.dropImage(name)
	}
	p.setPrompt(ctx, p.values["prompt"])
	ctx.Defer(func(app.Context) { app.Window().ScrollToID("generate-form") })
	ctx.Async(func() {
		for field := range r.Inputs {
			data, mt, err := p.gallery.Input(ctx, r, field)
			if err != nil {
				continue // the form works without it; the user can choose the image again
			}
			frame.Dispatch(p.ctx, func(app.Context) { p.setImage(field, data, mt) })
		}
	})
}

func (p *Page) deleteRecord(id string) {
	ctx := p.ctx
	ctx.Async(func() {
		err := p.gallery.Delete(ctx, id)
		frame.Dispatch(p.ctx, func(ctx app.Context) {
			if err != nil {
				notify.Fail(ctx, err)
				return
			}
			p.records = slices.DeleteFunc(p.records, func(r gallery.Record) bool { return r.ID == id })
			p.tasks = slices.DeleteFunc(p.tasks, func(t string) bool { return t == id })
			p.compare = slices.DeleteFunc(p.compare, func(t string) bool { return t == id })
			revokeURL(p.urls[id])
			delete(p.urls, id)
			p.viewing = ""
			notify.Done(ctx, "Image deleted.")
		})
	})
}

func (p *Page) export() {
	ctx := p.ctx
	ctx.Async(func() {
		var buf bytes.Buffer
		n, err := p.gallery.Export(ctx, &buf, time.Now())
		frame.Dispatch(p.ctx, func(ctx app.Context) {
			if err != nil {
				notify.Fail(ctx, err)
				return
			}
			download(buf.Bytes(), "fluxforge-gallery-"+time.Now().Format("20060102-150405")+".zip", "application/zip")
			notify.Done(ctx, fmt.Sprintf("Exported %d records.", n))
		})
	})
}

func (p *Page) importArchive(file app.Value) {
	ctx := p.ctx
	ctx.Async(func() {
		data, _, err := readFile(file, maxArchiveBytes)
		var res gallery.ImportResult
		if err == nil {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			res, err = p.gallery.Import(ictx, data)
			cancel()
		}
		if err != nil {
			frame.Dispatch(p.ctx, func(ctx app.Context) { notify.Fail(ctx, err) })
			return
		}
		p.loadGallery()
		frame.Dispatch(p.ctx, func(ctx app.Context) {
			notify.Done(ctx, fmt.Sprintf("Imported %d images; %d were already here.", res.Added, res.Skipped))
		})
	})
}
