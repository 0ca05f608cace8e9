// Package models is the Models tab: every finetune of the account with its
// training parameters and status, searchable and sortable, with details, copy
// id, delete (after a confirmation) and "Generate with this model".
package models

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/container"
	svc "github.com/fluxforge/fluxforge/app/service/models"
	"github.com/fluxforge/fluxforge/app/ui/frame"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

// refreshTimeout bounds a whole refresh of the list, however many finetunes.
const refreshTimeout = 2 * time.Minute

// Page is the Models tab; the shell renders it with New.
type Page struct {
	app.Compo

	c   *container.Container
	ctx app.Context // the component's own context, saved in OnMount
	svc *svc.Service

	list       []svc.Model
	query      string
	sortBy     svc.Column
	desc       bool
	loading    bool
	loadErr    string
	selected   string // id shown in the details panel
	confirming string // id awaiting delete confirmation
	deleting   bool
}

// New returns the tab's root component for the shell to render.
func New(c *container.Container) app.Composer {
	return &Page{c: c, sortBy: svc.ColumnCreated, desc: true}
}

// OnMount loads the cache at once, then refreshes from the API. It runs only
// in the browser, so no user data is ever pre-rendered.
func (p *Page) OnMount(ctx app.Context) {
	p.ctx = ctx
	p.svc = p.c.Models()
	ctx.Async(func() {
		if cached, err := p.svc.Cached(ctx); err == nil && len(cached) > 0 {
			frame.Dispatch(p.ctx, func(app.Context) { p.setList(cached) })
		}
	})
	p.refresh()
}

func (p *Page) refresh() {
	ctx := p.ctx
	p.loading, p.loadErr = true, ""
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
		list, err := p.svc.Refresh(rctx)
		frame.Dispatch(p.ctx, func(app.Context) {
			p.loading = false
			if err != nil {
				p.loadErr = notify.Message(err)
				return
			}
			p.setList(list)
		})
	})
}

func (p *Page) setList(list []svc.Model) {
	p.list = list
	svc.SortBy(p.list, p.sortBy, p.desc)
}

func (p *Page) sortOn(c svc.Column) {
	if p.sortBy == c {
		p.desc = !p.desc
	} else {
		p.sortBy, p.desc = c, false
	}
	svc.SortBy(p.list, p.sortBy, p.desc)
}

func (p *Page) copyID(id string) {
	clip := app.Window().Get("navigator").Get("clipboard")
	if !clip.Truthy() {
		notify.Show(p.ctx, notify.Error, "This browser does not allow copying here; select the id in the details instead.")
		return
	}
	clip.Call("writeText", id)
	notify.Done(p.ctx, "Model id copied.")
}

func (p *Page) remove(id string) {
	ctx := p.ctx
	p.deleting = true
	ctx.Async(func() {
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := p.svc.Delete(dctx, id)
		frame.Dispatch(p.ctx, func(app.Context) {
			p.deleting, p.confirming = false, ""
			if err != nil {
				notify.Fail(ctx, err)
				return
			}
			p.list = slices.DeleteFunc(p.list, func(m svc.Model) bool { return m.ID == id })
			if p.selected == id {
				p.selected = ""
			}
			notify.Done(ctx, "Model deleted.")
		})
	})
}

// Render draws the toolbar, the table, and the details and confirmation panels.
func (p *Page) Render() app.UI {
	shown := svc.Search(p.list, p.query)
	return app.Section().ID("tab-models").Class("tab").Body(
		app.H2().Text("Models"),
		app.Div().Class("toolbar").Body(
			app.Input().ID("model-search").Type("search").Placeholder("Search name, trigger word, id…").
				Aria("label", "Search models").Value(p.query).
				OnInput(func(ctx app.Context, e app.Event) { p.query = ctx.JSSrc().Get("value").String() }),
			app.Button().ID("refresh-models").Class("btn").Disabled(p.loading).
				Text(map[bool]string{true: "Refreshing…", false: "Refresh"}[p.loading]).
				OnClick(func(app.Context, app.Event) { p.refresh() }),
		),
		app.If(p.loadErr != "", func() app.UI {
			return app.P().ID("models-error").Class("error").Role("alert").Text(p.loadErr)
		}),
		app.If(len(p.list) == 0 && !p.loading && p.loadErr == "", func() app.UI {
			return app.P().ID("models-empty").Class("muted").Text("No finetunes yet: train one in the Finetune tab.")
		}),
		app.If(len(p.list) > 0, func() app.UI { return p.renderTable(shown) }),
		app.If(p.selected != "", p.renderDetails),
		app.If(p.confirming != "", p.renderConfirm),
	)
}

func (p *Page) renderTable(shown []svc.Model) app.UI {
	return app.Div().Class("table-wrap").Body(
		app.Table().ID("models-table").Class("table").Body(
			app.THead().Body(app.Tr().Body(
				app.Range(svc.Columns).Slice(func(i int) app.UI {
					col := svc.Columns[i]
					label := col.Label
					sort := "none"
					if p.sortBy == col.Column {
						sort = map[bool]string{true: "descending", false: "ascending"}[p.desc]
						label += map[bool]string{true: " ▼", false: " ▲"}[p.desc]
					}
					return app.Th().Aria("sort", sort).Body(
						app.Button().Class("sort sort-"+string(col.Column)).Text(label).
							OnClick(func(app.Context, app.Event) { p.sortOn(col.Column) }, app.EventScope(col.Column)),
					)
				}),
				app.Th().Text("Actions"),
			)),
			app.TBody().Body(
				app.Range(shown).Slice(func(i int) app.UI { return p.renderRow(shown[i]) }),
			),
		),
		app.P().Class("muted").Textf("%d of %d models", len(shown), len(p.list)),
	)
}

func (p *Page) renderRow(m svc.Model) app.UI {
	ready, why := m.Readiness()
	id := m.ID
	return app.Tr().Class("model-row").Body(
		app.Td().Class("model-name").Text(orDash(m.Name)),
		app.Td().Class("model-trigger").Text(orDash(m.TriggerWord)),
		app.Td().Text(orDash(m.Mode)),
		app.Td().Text(orDash(m.Type)),
		app.Td().Text(intOrDash(m.Rank)),
		app.Td().Text(intOrDash(m.Iterations)),
		app.Td().Text(learningRate(m.LearningRate)),
		app.Td().Text(orDash(m.Priority)),
		app.Td().Class("model-status").Title(why).Body(statusText(m)),
		app.Td().Text(created(m.Created)),
		app.Td().Class("actions").Body(
			app.Button().Class("btn small model-details").Text("Details").
				OnClick(func(app.Context, app.Event) { p.selected = id }, app.EventScope(id)),
			app.Button().Class("btn small model-copy").Text("Copy id").
				OnClick(func(app.Context, app.Event) { p.copyID(id) }, app.EventScope(id)),
			app.If(ready, func() app.UI {
				return app.A().Class("btn small primary model-generate").Href("/generate?model=" + url.QueryEscape(id)).Text("Generate")
			}),
			app.Button().Class("btn small danger model-delete").Text("Delete").
				OnClick(func(app.Context, app.Event) { p.confirming = id }, app.EventScope(id)),
		),
	)
}

func (p *Page) renderDetails() app.UI {
	m, ok := svc.Find(p.list, p.selected)
	if !ok {
		return app.Text("")
	}
	ready, why := m.Readiness()
	keys := make([]string, 0, len(m.Details))
	for k := range m.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return app.Aside().ID("model-details").Class("panel").Aria("label", "Model details").Body(
		app.H3().Text(orDash(m.Name)),
		app.Dl().Body(
			app.Dt().Text("Id"), app.Dd().Body(app.Code().ID("model-details-id").Text(m.ID)),
			app.Dt().Text("Status"), app.Dd().Body(statusText(m)),
			app.If(!ready, func() app.UI { return app.Dd().Class("muted").Text(why) }),
			app.If(m.Error != "", func() app.UI { return app.Dd().Class("error").Text(m.Error) }),
			app.Range(keys).Slice(func(i int) app.UI {
				return app.Div().Body(app.Dt().Text(keys[i]), app.Dd().Text(fmt.Sprint(m.Details[keys[i]])))
			}),
		),
		app.Div().Class("actions").Body(
			app.Button().Class("btn").Text("Copy id").OnClick(func(app.Context, app.Event) { p.copyID(m.ID) }, app.EventScope(m.ID)),
			app.If(ready, func() app.UI {
				return app.A().ID("details-generate").Class("btn primary").Href("/generate?model=" + url.QueryEscape(m.ID)).Text("Generate with this model")
			}),
			app.Button().ID("close-details").Class("btn").Text("Close").OnClick(func(app.Context, app.Event) { p.selected = "" }),
		),
	)
}

func (p *Page) renderConfirm() app.UI {
	m, _ := svc.Find(p.list, p.confirming)
	return app.Div().ID("confirm-delete").Class("dialog").Role("alertdialog").Aria("modal", "true").Body(
		app.Div().Class("panel").Body(
			app.P().Textf("Delete %q for good? BFL cannot restore a deleted finetune.", orDash(m.Name)),
			app.Div().Class("actions").Body(
				app.Button().ID("confirm-delete-yes").Class("btn danger").Disabled(p.deleting).Text("Delete").
					OnClick(func(app.Context, app.Event) { p.remove(p.confirming) }),
				app.Button().ID("confirm-delete-no").Class("btn").Disabled(p.deleting).Text("Cancel").
					OnClick(func(app.Context, app.Event) { p.confirming = "" }),
			),
		),
	)
}

func statusText(m svc.Model) app.UI {
	st := string(m.Status)
	if st == "" {
		st = "Unknown"
	}
	if m.Status == bfl.StatusPending && m.Progress != nil {
		return app.Span().Body(
			app.Text(fmt.Sprintf("Training %.0f%%", *m.Progress)),
			app.Progress().Max(100).Value(fmt.Sprintf("%.0f", *m.Progress)),
		)
	}
	return app.Span().Class("status status-" + statusClass(m.Status)).Text(st)
}

func statusClass(s bfl.Status) string {
	switch s {
	case bfl.StatusReady:
		return "ready"
	case bfl.StatusPending:
		return "pending"
	case "":
		return "unknown"
	}
	return "failed"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func intOrDash(n int) string {
	if n == 0 {
		return "–"
	}
	return strconv.Itoa(n)
}

func learningRate(v *float64) string {
	if v == nil {
		return "auto"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

func created(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.Local().Format("2006-01-02 15:04")
}
