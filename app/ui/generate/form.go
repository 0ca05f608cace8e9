package generate

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/inference"
	"github.com/fluxforge/fluxforge/app/service/models"
	"github.com/fluxforge/fluxforge/app/ui/frame"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

// aspectPresets are the common ratios offered as one-click choices; any other
// ratio between 21:9 and 9:21 can be typed.
var aspectPresets = []string{"21:9", "16:9", "3:2", "4:3", "1:1", "3:4", "2:3", "9:16", "9:21"}

// maxBatch bounds one click's batch: the queue keeps 24 in flight, this keeps
// a typo from ordering a thousand paid images.
const maxBatch = 100

func (p *Page) renderForm() app.UI {
	ep := p.currentEndpoint()
	m, haveModel := p.model()
	ready, why := m.Readiness()
	flags := p.c.Flags()
	return app.Div().ID("generate-form").Class("panel form").Body(
		app.Div().Class("field").Body(
			app.Label().For("model-select").Text("Model"),
			app.Select().ID("model-select").OnChange(func(ctx app.Context, e app.Event) {
				p.modelID = ctx.JSSrc().Get("value").String()
				p.formErr = ""
			}).Body(
				app.If(len(p.modelList) == 0, func() app.UI { return app.Option().Value("").Text("No models yet") }),
				app.Range(p.modelList).Slice(func(i int) app.UI {
					mm := p.modelList[i]
					label := mm.Name
					if label == "" {
						label = mm.ID
					}
					if ok, _ := mm.Readiness(); !ok {
						label += " (" + strings.ToLower(string(cmpStatus(mm.Status))) + ")"
					}
					return app.Option().Value(mm.ID).Selected(mm.ID == p.modelID).Text(label)
				}),
			),
			app.If(haveModel && !ready, func() app.UI {
				return app.P().ID("model-refusal").Class("warning").Role("status").Text(why)
			}),
		),
		app.Div().Class("field").Body(
			app.Label().For("endpoint-select").Text("Endpoint"),
			app.Select().ID("endpoint-select").OnChange(func(ctx app.Context, e app.Event) {
				p.endpoint = ctx.JSSrc().Get("value").String()
				p.errs, p.formErr = map[string]string{}, ""
			}).Body(
				app.Range(p.endpoints()).Slice(func(i int) app.UI {
					e := p.endpoints()[i]
					return app.Option().Value(e.Name).Selected(e.Name == ep.Name).Text(e.Name)
				}),
			),
			app.P().Class("hint").Text(ep.Summary),
		),
		app.Range(ep.Fields).Slice(func(i int) app.UI {
			fd := ep.Fields[i]
			switch {
			case fd.Name == "finetune_id" || fd.Name == "seed",
				strings.HasPrefix(fd.Name, "webhook_") && !flags.Enabled(core.FlagWebhooks),
				strings.HasPrefix(fd.Name, "image_prompt") && !flags.Enabled(core.FlagImagePrompt):
				return app.Text("")
			}
			return p.renderField(fd, m)
		}),
		p.renderSeed(),
		app.If(flags.Enabled(core.FlagBatches), p.renderBatch),
		app.If(p.formErr != "", func() app.UI {
			return app.P().ID("generate-error").Class("error").Role("alert").Text(p.formErr)
		}),
		app.Button().ID("generate").Class("btn primary").Disabled(p.busy > 0).
			Text(map[bool]string{true: "Submitting…", false: "Generate"}[p.busy > 0]).
			OnClick(func(ctx app.Context, e app.Event) {
				p.submit(func(f inference.Form) ([]inference.Form, error) { return []inference.Form{f}, nil })
			}),
	)
}

func cmpStatus(s bfl.Status) bfl.Status {
	if s == "" {
		return "status unknown"
	}
	if s == bfl.StatusPending {
		return "training"
	}
	return s
}

func label(name string) string {
	s := strings.ReplaceAll(name, "_", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

func (p *Page) setValue(name string) app.EventHandler {
	return func(ctx app.Context, e app.Event) {
		p.values[name] = ctx.JSSrc().Get("value").String()
		delete(p.errs, name)
	}
}

func (p *Page) renderField(fd bfl.Field, m models.Model) app.UI {
	id := "field-" + fd.Name
	var input app.UI
	switch {
	case fd.Name == "prompt":
		input = p.renderPrompt(fd, m)
	case fd.Format == bfl.FormatAspectRatio:
		input = app.Div().Body(
			app.Input().ID(id).Type("text").Value(p.values[fd.Name]).Placeholder("%v", fd.Default).
				Attr("inputmode", "numeric").OnInput(p.setValue(fd.Name), app.EventScope(fd.Name)),
			app.Div().Class("presets").Body(app.Range(aspectPresets).Slice(func(i int) app.UI {
				ar := aspectPresets[i]
				cur := p.values[fd.Name]
				if cur == "" {
					cur = fmt.Sprint(fd.Default)
				}
				return app.Button().Class("btn small ar-preset").Aria("pressed", fmt.Sprint(cur == ar)).Text(ar).
					OnClick(func(app.Context, app.Event) { p.values[fd.Name] = ar; delete(p.errs, fd.Name) }, app.EventScope(fd.Name, ar))
			})),
		)
	case fd.Name == "mask":
		input = p.renderMask(fd)
	case fd.Format == bfl.FormatBase64Image:
		input = p.renderImageInput(fd)
	case len(fd.Enum) > 0:
		cur := p.values[fd.Name]
		if cur == "" {
			cur = fmt.Sprint(fd.Default)
		}
		input = app.Select().ID(id).OnChange(p.setValue(fd.Name), app.EventScope(fd.Name)).Body(
			app.Range(fd.Enum).Slice(func(i int) app.UI {
				v := fmt.Sprint(fd.Enum[i])
				return app.Option().Value(v).Selected(v == cur).Text(v)
			}),
		)
	case fd.Type == bfl.Boolean:
		checked := p.values[fd.Name] == "true" || p.values[fd.Name] == "" && fd.Default == true
		input = app.Input().ID(id).Type("checkbox").Checked(checked).OnChange(func(ctx app.Context, e app.Event) {
			p.values[fd.Name] = strconv.FormatBool(ctx.JSSrc().Get("checked").Bool())
		}, app.EventScope(fd.Name))
	case fd.Type == bfl.Integer || fd.Type == bfl.Number:
		step := 1.0
		if fd.MultipleOf > 0 {
			step = fd.MultipleOf
		} else if fd.Type == bfl.Number {
			step = 0.01
		}
		in := app.Input().ID(id).Type("number").Step(step).Value(p.values[fd.Name]).OnInput(p.setValue(fd.Name), app.EventScope(fd.Name))
		if fd.Default != nil {
			in = in.Placeholder("%v", fd.Default)
		}
		if fd.Min != nil {
			in = in.Min(*fd.Min)
		}
		if fd.Max != nil {
			in = in.Max(*fd.Max)
		}
		if fd.MultipleOf > 0 {
			// Snap as soon as the user leaves the field, so the value shown is the value sent.
			in = in.OnChange(func(ctx app.Context, e app.Event) {
				x, err := strconv.ParseFloat(ctx.JSSrc().Get("value").String(), 64)
				if err == nil {
					p.values[fd.Name] = strconv.FormatFloat(inference.Snap(fd, x), 'f', -1, 64)
				}
			}, app.EventScope(fd.Name))
		}
		input = in
	default:
		input = app.Input().ID(id).Type("text").Value(p.values[fd.Name]).OnInput(p.setValue(fd.Name), app.EventScope(fd.Name))
	}
	return app.Div().Class("field").Body(
		app.Label().For(id).Text(label(fd.Name)+map[bool]string{true: " *", false: ""}[fd.Required]),
		input,
		app.If(fd.Hint != "", func() app.UI { return app.P().Class("hint").Text(rangeHint(fd)) }),
		app.If(p.errs[fd.Name] != "", func() app.UI {
			return app.P().ID(id + "-error").Class("error").Text(p.errs[fd.Name])
		}),
	)
}

// rangeHint is the field's hint with its range and default.
func rangeHint(fd bfl.Field) string {
	h := fd.Hint
	if fd.Min != nil && fd.Max != nil {
		h += fmt.Sprintf(" (%g to %g", *fd.Min, *fd.Max)
		if fd.MultipleOf > 0 {
			h += fmt.Sprintf(", steps of %g", fd.MultipleOf)
		}
		if fd.Default != nil {
			h += fmt.Sprintf("; default %v", fd.Default)
		}
		h += ")"
	}
	return h
}

func (p *Page) renderPrompt(fd bfl.Field, m models.Model) app.UI {
	prompt := p.values["prompt"]
	missing := m.TriggerWord != "" && !inference.HasTriggerWord(prompt, m.TriggerWord)
	return app.Div().Body(
		app.Textarea().ID("field-prompt").Rows(3).Text(prompt).OnInput(p.setValue("prompt")),
		app.If(missing, func() app.UI {
			return app.P().ID("trigger-warning").Class("warning").Body(
				app.Textf("The prompt does not mention the trigger word %q, so the model may not show.", m.TriggerWord),
				app.Button().ID("insert-trigger").Class("btn small").Text("Insert it").OnClick(func(ctx app.Context, e app.Event) {
					p.setPrompt(ctx, inference.InsertTriggerWord(p.values["prompt"], m.TriggerWord))
				}, app.EventScope(m.TriggerWord)),
			)
		}),
	)
}

// setPrompt changes the prompt from code. A textarea's text node only sets its
// default, so the live value is written after the render too.
func (p *Page) setPrompt(ctx app.Context, prompt string) {
	p.values["prompt"] = prompt
	ctx.Defer(func(app.Context) {
		if el := app.Window().GetElementByID("field-prompt"); el.Truthy() {
			el.Set("value", prompt)
		}
	})
}

func (p *Page) renderImageInput(fd bfl.Field) app.UI {
	id := "field-" + fd.Name
	return app.Div().Class("image-input").Body(
		app.Input().ID(id).Type("file").Accept("image/png,image/jpeg,image/webp").OnChange(p.pickImage(fd.Name), app.EventScope(fd.Name)),
		app.If(p.inputURLs[fd.Name] != "", func() app.UI {
			return app.Div().Body(
				app.Img().Class("input-preview").Src(p.inputURLs[fd.Name]).Alt(label(fd.Name)).Style("max-width", "240px"),
				app.Button().Class("btn small").Text("Remove").OnClick(func(app.Context, app.Event) { p.dropImage(fd.Name) }, app.EventScope(fd.Name)),
			)
		}),
	)
}

func (p *Page) pickImage(name string) app.EventHandler {
	return func(ctx app.Context, e app.Event) {
		file := ctx.JSSrc().Get("files").Index(0)
		ctx.Async(func() {
			data, mt, err := readFile(file, maxInputBytes)
			frame.Dispatch(p.ctx, func(ctx app.Context) {
				if err != nil {
					p.errs[name] = err.Error()
					return
				}
				p.setImage(name, data, mt)
			})
		})
	}
}

func (p *Page) setImage(name string, data []byte, mt string) {
	p.dropImage(name)
	p.images[name] = inference.Image{Data: data, MediaType: mt}
	p.inputURLs[name] = objectURL(data, mt)
	delete(p.errs, name)
	if name == "image" {
		p.mask.reset(data)
	}
}

func (p *Page) dropImage(name string) {
	revokeURL(p.inputURLs[name])
	delete(p.inputURLs, name)
	delete(p.images, name)
}

func (p *Page) renderSeed() app.UI {
	return app.Div().Class("field seed").Body(
		app.Label().For("field-seed").Text("Seed"),
		app.Input().ID("field-seed").Type("number").Step(1).Min(0).Value(p.seedValue).
			Placeholder("random").OnInput(func(ctx app.Context, e app.Event) {
			p.seedValue = ctx.JSSrc().Get("value").String()
			delete(p.errs, "seed")
		}),
		app.Label().Class("inline").Body(
			app.Input().ID("seed-lock").Type("checkbox").Checked(p.seedLock).OnChange(func(ctx app.Context, e app.Event) {
				p.seedLock = ctx.JSSrc().Get("checked").Bool()
			}),
			app.Text(" Lock (reuse this seed)"),
		),
		app.P().Class("hint").Text("Unlocked, every image gets a new random seed; the one used shows here after each result."),
		app.If(p.errs["seed"] != "", func() app.UI { return app.P().ID("field-seed-error").Class("error").Text(p.errs["seed"]) }),
	)
}

func (p *Page) seed() (inference.Seed, bool) {
	if !p.seedLock {
		return inference.Seed{}, true
	}
	v, err := strconv.ParseInt(strings.TrimSpace(p.seedValue), 10, 64)
	if err != nil || v < 0 {
		p.errs["seed"] = "a locked seed must be a whole number of 0 or more"
		return inference.Seed{}, false
	}
	return inference.Seed{Locked: true, Value: v}, true
}

func (p *Page) renderBatch() app.UI {
	return app.Details().ID("batch").Class("panel").Body(
		app.Summary().Text("Batches"),
		app.Div().Class("field").Body(
			app.Label().For("batch-count").Text("Variations (different seeds)"),
			app.Input().ID("batch-count").Type("number").Min(2).Max(maxBatch).Value(p.batchN).
				OnInput(func(ctx app.Context, e app.Event) { p.batchN = ctx.JSSrc().Get("value").String() }),
			app.Button().ID("generate-variations").Class("btn").Text("Generate variations").Disabled(p.busy > 0).OnClick(func(app.Context, app.Event) {
				p.submit(func(f inference.Form) ([]inference.Form, error) {
					n, err := strconv.Atoi(strings.TrimSpace(p.batchN))
					if err != nil || n < 1 || n > maxBatch {
						return nil, &core.ValidationError{Fields: map[string]string{"batch": fmt.Sprintf("variations must be 1 to %d", maxBatch)}}
					}
					return inference.Variations(f, n), nil
				})
			}),
		),
		app.Div().Class("field").Body(
			app.Label().For("grid-strengths").Text("Finetune strengths × seeds grid"),
			app.Input().ID("grid-strengths").Type("text").Value(p.gridStrengths).
				OnInput(func(ctx app.Context, e app.Event) { p.gridStrengths = ctx.JSSrc().Get("value").String() }),
			app.Input().ID("grid-seeds").Type("number").Min(1).Max(maxBatch).Value(p.gridSeeds).
				OnInput(func(ctx app.Context, e app.Event) { p.gridSeeds = ctx.JSSrc().Get("value").String() }),
			app.Button().ID("generate-grid").Class("btn").Text("Generate grid").Disabled(p.busy > 0).OnClick(func(app.Context, app.Event) {
				p.submit(p.grid)
			}),
			app.P().Class("hint").Text("Strengths separated by commas, then how many seeds; at most 24 tasks run at once, the rest wait."),
		),
	)
}

func (p *Page) grid(f inference.Form) ([]inference.Form, error) {
	bad := &core.ValidationError{Fields: map[string]string{}}
	var strengths []float64
	for _, s := range strings.Split(p.gridStrengths, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || x < 0 || x > 2 {
			bad.Fields["finetune_strength"] = "grid strengths must be numbers from 0 to 2, separated by commas"
			break
		}
		strengths = append(strengths, x)
	}
	n, err := strconv.Atoi(strings.TrimSpace(p.gridSeeds))
	if err != nil || n < 1 || n*len(strengths) > maxBatch {
		bad.Fields["batch"] = fmt.Sprintf("the grid must have 1 to %d cells", maxBatch)
	}
	if len(bad.Fields) > 0 {
		return nil, bad
	}
	seeds := make([]int64, 0, n)
	for _, v := range inference.Variations(f, n) {
		seeds = append(seeds, v.Seed.Value)
	}
	return inference.Grid(f, strengths, seeds), nil
}

// submit builds the form and runs the task(s) it expands to. The model's
// status is checked again first: one that finished training since the list
// was read is let through, one still training is refused with the reason.
//
// While a submit is on its way the buttons are disabled, and a click that
// gets through anyway does nothing: a second submit is a second charge.
func (p *Page) submit(expand func(inference.Form) ([]inference.Form, error)) {
	if p.busy > 0 {
		return
	}
	p.errs, p.formErr = map[string]string{}, ""
	m, ok := p.model()
	if !ok {
		p.formErr = "Choose a model first."
		return
	}
	seed, ok := p.seed()
	if !ok {
		p.formErr = "Check the seed."
		return
	}
	f := inference.Form{Endpoint: p.currentEndpoint().Name, Model: m, Values: maps.Clone(p.values), Images: maps.Clone(p.images), Seed: seed}
	if err := p.attachMask(&f); err != nil {
		p.showError(err)
		return
	}
	if _, err := f.Body(seed.Value); err != nil {
		p.showError(err)
		return
	}
	forms, err := expand(f)
	if err != nil {
		p.showError(err)
		return
	}
	ctx := p.ctx
	p.busy++
	ctx.Async(func() {
		if ok, _ := m.Readiness(); !ok {
			if fresh, err := p.models.Recheck(ctx, m); err == nil {
				m = fresh
				frame.Dispatch(p.ctx, func(app.Context) { p.replaceModel(fresh) })
			}
			for i := range forms {
				forms[i].Model = m
			}
		}
		var once sync.Once
		submitted := func() { once.Do(func() { frame.Dispatch(p.ctx, func(app.Context) { p.busy-- }) }) }
		// The subscription shows the records; here each task's first record
		// says BFL accepted (and charged) it, so the balance is read again.
		var mu sync.Mutex
		accepted := map[string]bool{}
		onRecord := func(r gallery.Record) {
			submitted()
			mu.Lock()
			first := !accepted[r.ID]
			accepted[r.ID] = true
			mu.Unlock()
			if first {
				notify.RefreshCredits(ctx)
			}
		}
		// A submitted task is paid for: leaving the tab must not stop it
		// before its image is stored, and only an app start resumes tasks.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskTimeout)
		defer cancel()
		var errs []error
		if len(forms) == 1 {
			_, err := p.infer.Generate(tctx, forms[0], onRecord)
			errs = append(errs, err)
		} else {
			for _, r := range p.infer.Batch(tctx, forms, func(_ int, r gallery.Record) { onRecord(r) }) {
				errs = append(errs, r.Err)
			}
		}
		submitted()
		for _, err := range errs {
			if err != nil {
				frame.Dispatch(p.ctx, func(app.Context) { p.showError(err) })
				return // one message is enough; the results show each task
			}
		}
	})
}

func (p *Page) replaceModel(m models.Model) {
	for i := range p.modelList {
		if p.modelList[i].ID == m.ID {
			p.modelList[i] = m
		}
	}
}
