package finetune

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
)

// Render lays out the tab: dataset, form and jobs. User data only reaches
// attributes on the client (the dataset is loaded in OnMount), never in the
// server's pre-render.
func (p *Page) Render() app.UI {
	return app.Section().ID("tab-finetune").Class("tab finetune").DataSet("restored", p.restored).Body(
		app.H2().Text("Finetune"),
		p.renderDataset(),
		p.renderForm(),
		p.renderJobs(),
	)
}

func (p *Page) renderDataset() app.UI {
	orig, sent := p.ds.Bytes()
	return app.Section().ID("dataset").Class("card").Body(
		app.H3().Text("Dataset"),
		app.Div().ID("dataset-drop").Class("dropzone").Class(map[bool]string{true: "over"}[p.over]).
			OnDragOver(func(ctx app.Context, e app.Event) {
				e.PreventDefault()
				if p.over {
					ctx.PreventUpdate() // dragover repeats every few ms
				}
				p.over = true
			}).
			OnDragLeave(func(ctx app.Context, e app.Event) { p.over = false }).
			OnDrop(p.onDrop).
			Body(
				app.P().Text("Drop photos, a folder, or a ZIP here (JPG, PNG or WebP; same-name .txt files are captions)."),
				app.Label().Class("button").Body(
					app.Text("Choose files"),
					app.Input().ID("dataset-input").Type("file").Multiple(true).Hidden(true).
						Accept("image/jpeg,image/png,image/webp,.jpg,.jpeg,.png,.webp,.txt,.zip").
						OnChange(p.onPick),
				),
				app.Label().Class("button").Body(
					app.Text("Choose a folder"),
					app.Input().ID("folder-input").Type("file").Multiple(true).Attr("webkitdirectory", true).
						Hidden(true).OnChange(p.onPick),
				),
				app.If(!p.restored && p.svc != nil, func() app.UI {
					return app.P().Class("muted").Text("Restoring your draft…")
				}),
				app.If(p.adding > 0, func() app.UI {
					return app.P().ID("dataset-busy").Class("muted").Textf("Reading %d file(s)…", p.adding)
				}),
				app.Range(p.addErrs).Slice(func(i int) app.UI {
					return app.P().Class("error").Text(p.addErrs[i])
				}),
			),
		// The byte counts as data attributes let tests and benchmarks read exact figures.
		app.P().ID("draft-status").Class("muted").DataSet("saves", p.saves).
			Text(map[bool]string{true: "Your draft is saved in this browser.", false: ""}[p.saves > 0]),
		app.P().ID("dataset-summary").DataSet("original", orig).DataSet("sent", sent).Textf("%d image(s) · %s original · %s to send",
			len(p.ds.Images), size(orig), size(sent)),
		app.Div().Class("row").Body(
			app.Button().ID("bulk-trigger").Class("button").Text("Add trigger word to captions").
				Disabled(len(p.ds.Images) == 0).OnClick(func(ctx app.Context, e app.Event) {
				if n := p.ds.InsertTrigger(p.form.Trigger()); n > 0 {
					p.changed()
					p.syncCaptions(ctx)
				}
			}),
			app.Button().ID("bulk-clear").Class("button").Text("Clear captions").
				Disabled(len(p.ds.Images) == 0).OnClick(func(ctx app.Context, e app.Event) {
				p.ds.ClearCaptions()
				p.changed()
				p.syncCaptions(ctx)
			}),
		),
		p.renderChecks(),
		app.Ul().ID("dataset-grid").Class("thumbs").Style("list-style", "none").Style("padding", "0").Body(
			app.Range(p.ds.Images).Slice(func(i int) app.UI { return p.renderImage(i) }),
		),
	)
}

func (p *Page) renderImage(i int) app.UI {
	im := p.ds.Images[i]
	name := im.Name
	sizes := fmt.Sprintf("%s, %d×%d", size(im.OriginalSize), im.OriginalW, im.OriginalH)
	if im.SentSize() != im.OriginalSize || im.Width != im.OriginalW {
		sizes += fmt.Sprintf(" → sent %s, %d×%d", size(im.SentSize()), im.Width, im.Height)
	}
	return app.Li().Class("thumb").DataSet("name", name).Body(
		app.If(im.Format.Allowed(), func() app.UI {
			return app.Img().Src(p.thumbs[name]).Alt(name).Loading("lazy")
		}).Else(func() app.UI {
			return app.Div().Class("thumb-bad").Text("not an image BFL accepts")
		}),
		app.P().Class("thumb-name").Text(name),
		app.P().Class("thumb-sizes muted").Text(sizes),
		app.Textarea().Class("caption").ID(fmt.Sprintf("caption-%d", i)).Placeholder("Caption (optional)").
			Text(im.Caption).OnInput(func(ctx app.Context, e app.Event) {
			p.ds.SetCaption(name, ctx.JSSrc().Get("value").String())
			p.changed()
		}),
		app.Button().Class("button remove").Title("Remove "+name).Text("Remove").
			OnClick(func(ctx app.Context, e app.Event) {
				p.removeImage(name)
				p.syncCaptions(ctx)
			}),
	)
}

// syncCaptions shows each image's caption in its box once the grid is
// redrawn. A box's text only sets its starting value: one the user has
// typed in keeps what it shows when the images shift under it (after a
// removal) or their captions change (the bulk actions), and would then
// show, and save on the next keystroke, another image's caption.
func (p *Page) syncCaptions(ctx app.Context) {
	ctx.Defer(func(app.Context) {
		for i, im := range p.ds.Images {
			if el := app.Window().GetElementByID(fmt.Sprintf("caption-%d", i)); el.Truthy() && el.Get("value").String() != im.Caption {
				el.Set("value", im.Caption)
			}
		}
	})
}

func (p *Page) renderChecks() app.UI {
	checks := p.ds.Checks(p.form.Trigger())
	return app.Div().ID("checks").Class("checks").Body(
		app.If(len(checks) == 0, func() app.UI {
			return app.P().Class("check check-ok").Body(app.Span().Class("chip ok").Text("Ready"), app.Text(" The dataset is ready to send."))
		}),
		app.Ul().Style("list-style", "none").Style("padding", "0").Body(
			app.Range(checks).Slice(func(i int) app.UI {
				c := checks[i]
				return app.Li().Class("check check-"+string(c.Level)).Body(
					app.Span().Class(map[finetuning.Level]string{finetuning.LevelError: "chip error", finetuning.LevelWarning: "chip warn"}[c.Level]).
						Text(map[finetuning.Level]string{finetuning.LevelError: "Error", finetuning.LevelWarning: "Warning"}[c.Level]),
					app.Text(" "+c.Message),
				)
			}),
		),
	)
}

func (p *Page) onPick(ctx app.Context, e app.Event) {
	input := ctx.JSSrc()
	files := fileList(input.Get("files"))
	input.Set("value", "") // so picking the same files again fires change
	p.addFiles(files)
}

func (p *Page) onDrop(ctx app.Context, e app.Event) {
	e.PreventDefault()
	p.over = false
	dt := e.Get("dataTransfer")
	entries := dropEntries(dt)
	if len(entries) == 0 {
		p.addFiles(fileList(dt.Get("files")))
		return
	}
	p.adding++
	pctx := p.ctx // the component's own: the drop zone's may be gone when this ends
	ctx.Async(func() {
		files, err := walkEntries(entries)
		pctx.Dispatch(func(app.Context) {
			p.adding--
			if err != nil {
				p.addErrs = append(p.addErrs, err.Error())
				return
			}
			p.addFiles(files)
		})
	})
}

func (p *Page) renderForm() app.UI {
	webhooks := p.c != nil && p.c.Flags().Enabled(core.FlagWebhooks)
	var main, advanced []app.UI
	for _, f := range finetuning.FormFields(webhooks) {
		if strings.HasPrefix(f.Name, "webhook_") {
			advanced = append(advanced, p.renderField(f))
		} else {
			main = append(main, p.renderField(f))
		}
	}
	mode := p.form[finetuning.FieldMode]
	presets := finetuning.Presets(mode)
	return app.Section().ID("training-form").Class("card").Body(
		app.H3().Text("Training"),
		app.Div().ID("presets").Body(
			app.P().Class("muted").Textf("Presets for the %s mode:", mode),
			app.Range(presets).Slice(func(i int) app.UI {
				pr := presets[i]
				return app.Div().Class("row preset").Body(
					app.Button().ID("preset-"+pr.ID).Class("button").Text(pr.Name).
						OnClick(func(ctx app.Context, e app.Event) {
							p.form = p.form.Apply(pr)
							p.fieldErrs = nil
							p.changed()
						}),
					app.Span().Class("hint").Text(pr.Why+" "+presetSummary(pr)),
				)
			}),
		),
		app.Div().Class("fields").Body(main...),
		app.If(len(advanced) > 0, func() app.UI {
			return app.Details().ID("advanced").Body(app.Summary().Text("Advanced: webhook"), app.Div().Class("fields").Body(advanced...))
		}),
		p.renderStart(),
	)
}

// presetSummary lists what a preset sets, so choosing one hides nothing.
func presetSummary(pr finetuning.Preset) string {
	var parts []string
	for _, f := range finetuning.FormFields(false) {
		if v, ok := pr.Values[f.Name]; ok && f.Name != finetuning.FieldMode {
			parts = append(parts, label(f.Name)+" "+v)
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// labels are friendlier names than the API's for a few fields.
var labels = map[string]string{
	finetuning.FieldComment: "Name", finetuning.FieldTrigger: "Trigger word", finetuning.FieldType: "Finetune type",
}

func (p *Page) renderField(f bfl.Field) app.UI {
	id := "field-" + f.Name
	name := labels[f.Name]
	if name == "" {
		name = label(f.Name)
	}
	value := p.form[f.Name]
	onInput := func(ctx app.Context, e app.Event) { p.setField(f.Name, ctx.JSSrc().Get("value").String()) }
	var input app.UI
	switch {
	case len(f.Enum) > 0:
		current := value
		if current == "" {
			current = jsonText(f.Default)
		}
		opts := make([]app.UI, len(f.Enum))
		for i, v := range f.Enum {
			s := jsonText(v)
			opts[i] = app.Option().Value(s).Selected(s == current).Text(s)
		}
		input = app.Select().ID(id).Body(opts...).OnChange(onInput)
	case f.Type == bfl.Boolean:
		on := value == "true" || (value == "" && f.Default == true)
		input = app.Input().ID(id).Type("checkbox").Checked(on).Style("align-self", "flex-start").OnChange(func(ctx app.Context, e app.Event) {
			p.setField(f.Name, strconv.FormatBool(ctx.JSSrc().Get("checked").Bool()))
		})
	default:
		in := app.Input().ID(id).Value(value).Placeholder(placeholder(p.form, f)).OnInput(onInput)
		switch {
		case f.Type == bfl.Integer:
			in = in.Type("number").Step(1)
			if f.Min != nil && f.Max != nil {
				in = in.Min(*f.Min).Max(*f.Max)
			}
		case f.Type == bfl.Number:
			in = in.Type("text").Attr("inputmode", "decimal") // so 1e-5 can be typed
		case f.Name == "webhook_secret":
			in = in.Type("password").AutoComplete(false)
		case f.Format == bfl.FormatURI:
			in = in.Type("url")
		default:
			in = in.Type("text")
		}
		input = in
	}
	errMsg := p.fieldErrs[f.Name]
	return app.Div().Class("field").Body(
		app.Label().For(id).Body(app.Text(name), app.If(f.Required, func() app.UI { return app.Span().Class("required").Text(" *") })),
		input,
		app.P().Class("hint").Text(f.Hint+rule(f)),
		app.P().ID(id+"-error").Class("field-error").Hidden(errMsg == "").Text(errMsg),
	)
}

// placeholder shows what BFL will use when the field is left empty; for the
// learning rate that is the automatic rate for the chosen type, not null.
func placeholder(form finetuning.Form, f bfl.Field) string {
	if f.Name == finetuning.FieldLearningRate {
		return form.LearningRatePlaceholder()
	}
	if f.Default != nil {
		return jsonText(f.Default)
	}
	return ""
}

// rule describes the field's range, appended to its hint.
func rule(f bfl.Field) string {
	switch {
	case f.Min != nil && f.Max != nil:
		return fmt.Sprintf(" Range %s to %s.", jsonText(*f.Min), jsonText(*f.Max)) + defaultText(f)
	case f.MaxLength > 0:
		return fmt.Sprintf(" Up to %d characters.", f.MaxLength)
	}
	return defaultText(f)
}

func defaultText(f bfl.Field) string {
	if f.Default == nil || f.Type == bfl.Boolean {
		return ""
	}
	return " Default " + jsonText(f.Default) + "."
}

func jsonText(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func (p *Page) renderStart() app.UI {
	blocked := p.blockedReason()
	busy := p.packing || p.uploading
	var pct float64
	if p.total > 0 {
		pct = float64(p.sent) * 100 / float64(p.total)
	}
	return app.Div().Class("start row").Body(
		app.Button().ID("start-training").Class("primary").Text("Start training").
			Disabled(busy || blocked != "" || !p.restored).OnClick(p.start),
		app.If(blocked != "" && !busy, func() app.UI {
			return app.P().ID("start-blocked").Class("muted").Text(blocked)
		}),
		app.If(p.packing, func() app.UI {
			return app.P().ID("packing").Text("Packing the dataset…")
		}),
		app.If(p.uploading, func() app.UI {
			return app.Div().Body(
				app.Progress().ID("upload-progress").Class("progress").Max(100).Value(fmt.Sprintf("%.0f", pct)).DataSet("total", p.total),
				app.Span().ID("upload-label").Textf(" %s of %s sent", size(p.sent), size(p.total)),
			)
		}),
		app.P().ID("start-error").Class("error").Hidden(p.startErr == "").Text(p.startErr),
	)
}

func (p *Page) renderJobs() app.UI {
	return app.Section().ID("jobs").Class("card").Body(
		app.H3().Text("Jobs"),
		app.If(len(p.jobs) == 0, func() app.UI {
			return app.P().Class("muted").Text("Trainings you start here appear in this list.")
		}),
		app.Ul().Class("jobs").Style("list-style", "none").Style("padding", "0").Body(
			app.Range(p.jobs).Slice(func(i int) app.UI { return p.renderJob(p.jobs[i]) }),
		),
	)
}

func (p *Page) renderJob(j finetuning.Job) app.UI {
	var pct float64
	if j.Progress != nil {
		pct = *j.Progress
	}
	return app.Li().Class("job").ID("job-"+j.ID).Body(
		app.Strong().Class("job-name").Text(j.Name),
		app.Span().Class("job-meta muted").Textf(" · %s · %s · %s", j.TriggerWord, j.Mode, j.Type),
		app.Div().Body(
			app.Span().Class("job-status chip "+statusTone(j)).Text(string(j.Status)),
			app.Progress().Class("job-progress progress").Max(100).Value(fmt.Sprintf("%.0f", pct)),
			app.Span().Class("job-elapsed muted").Text(" "+j.Elapsed(p.now).String()),
		),
		app.If(j.LastError != "", func() app.UI { return app.P().Class("job-error error").Text(j.LastError) }),
		app.If(j.Status == bfl.StatusReady, func() app.UI {
			return app.A().Class("job-generate button").Href(generateLink(j.ID)).Text("Generate with this model")
		}),
	)
}

// statusTone picks the chip colour of a job's status.
func statusTone(j finetuning.Job) string {
	switch {
	case j.Status == bfl.StatusReady:
		return "ok"
	case j.Done():
		return "error"
	}
	return "warn"
}

// size formats a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
