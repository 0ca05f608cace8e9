package ui

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

// settingsPage edits the configuration. Each change applies at once and is
// saved in the browser; "Reset" returns a value to the proxy's or the app's.
type settingsPage struct {
	app.Compo

	// Props from the shell: what the proxy reported.
	Mode     string
	Upstream string
	Version  string
	Offline  bool

	c      *container.Container
	ctx    app.Context
	errors map[string]string // per setting key
}

func newSettings(c *container.Container) *settingsPage { return &settingsPage{c: c} }

// Props sets what the shell knows about the proxy.
func (p *settingsPage) Props(h core.Health, pc core.ProxyConfig, offline bool) *settingsPage {
	p.Mode, p.Version, p.Offline = h.Mode, h.Version, offline
	p.Upstream = pc.Upstream
	if p.Upstream == "" {
		p.Upstream = h.Upstream
	}
	return p
}

func (p *settingsPage) OnMount(ctx app.Context) { p.ctx = ctx }

func (p *settingsPage) Render() app.UI {
	cfg := p.c.Config()
	flags := p.c.Flags()
	return app.Section().ID("settings").Class("settings").Body(
		app.H2().Text("Settings"),
		app.Section().Class("card").Body(
			app.H3().Text("Proxy"),
			app.P().ID("proxy-info").Class("muted").Text(p.proxyInfo()),
			p.textField(core.KeyProxyURL, "url", "https://proxy.example.com"),
			p.textField(core.KeyProxyToken, "password", ""),
		),
		app.Section().Class("card").Body(
			app.H3().Text("Layout"),
			p.startTabField(),
		),
		app.Section().Class("card").Body(
			app.H3().Text("Features"),
			app.Range(flags.List()).Slice(func(i int) app.UI {
				f := flags.List()[i]
				key := flags.Key(f.Name)
				v := cfg.Get(key)
				return app.Div().Class("setting switch").Body(
					app.Label().For(settingID(key)).Body(
						app.Input().Type("checkbox").ID(settingID(key)).Checked(flags.Enabled(f.Name)).
							OnChange(func(ctx app.Context, e app.Event) {
								p.apply(key, ctx.JSSrc().Get("checked").Bool())
							}),
						app.Span().Class("setting-label").Text(f.Label),
					),
					p.source(key, v),
					app.P().Class("hint").Text(f.Hint),
				)
			}),
		),
		app.Section().Class("card").Body(
			app.H3().Text("Your data"),
			app.P().Class("muted").Text("Jobs, models, drafts and the gallery are kept in this browser only. "+
				"Your BFL key is never sent here: it stays on the proxy."),
		),
	)
}

func (p *settingsPage) proxyInfo() string {
	switch {
	case p.Offline:
		return "The proxy cannot be reached right now."
	case p.Mode == "":
		return "Asking the proxy…"
	case p.Mode == "simulated":
		return fmt.Sprintf("Simulated mode: a built-in BFL simulator answers (%s). Nothing is charged.", p.Upstream)
	default:
		return fmt.Sprintf("Live mode: the proxy uses BFL at %s (version %s).", p.Upstream, p.Version)
	}
}

func (p *settingsPage) setting(key string) core.Setting {
	for _, s := range p.c.Config().Settings() {
		if s.Key == key {
			return s
		}
	}
	return core.Setting{Key: key}
}

func (p *settingsPage) textField(key, kind, placeholder string) app.UI {
	s := p.setting(key)
	id := settingID(key)
	return app.Div().Class("setting").Body(
		app.Label().For(id).Class("setting-label").Text(s.Label),
		app.Div().Class("setting-row").Body(
			app.Input().Type(kind).ID(id).Placeholder(placeholder).AutoComplete(false).
				Value(clientOnly(p.c.Config().String(key))).
				OnChange(func(ctx app.Context, e app.Event) { p.apply(key, ctx.JSSrc().Get("value").String()) }),
			p.source(key, p.c.Config().Get(key)),
		),
		p.fieldError(key),
		app.P().Class("hint").Text(s.Hint),
	)
}

func (p *settingsPage) startTabField() app.UI {
	key := core.KeyStartTab
	s := p.setting(key)
	id := settingID(key)
	current := startTab(p.c).path
	all := tabs()
	return app.Div().Class("setting").Body(
		app.Label().For(id).Class("setting-label").Text(s.Label),
		app.Div().Class("setting-row").Body(
			app.Select().ID(id).OnChange(func(ctx app.Context, e app.Event) {
				p.apply(key, ctx.JSSrc().Get("value").String())
			}).Body(
				app.Range(all).Slice(func(i int) app.UI {
					name := strings.TrimPrefix(all[i].path, "/")
					return app.Option().Value(name).Selected(all[i].path == current).Text(all[i].title)
				}),
			),
			p.source(key, p.c.Config().Get(key)),
		),
		app.P().Class("hint").Text(s.Hint),
	)
}

// source shows where the value comes from, with a reset when it is the user's.
func (p *settingsPage) source(key string, v core.Value) app.UI {
	label := map[string]string{core.SourceDefault: "default", core.SourceProxy: "set by the proxy", core.SourceUser: "your choice"}[v.Source]
	return app.Span().Class("source").Body(
		app.Span().Class("source-label").Text(label),
		app.If(v.Source == core.SourceUser, func() app.UI {
			return app.Button().ID("reset-" + strings.TrimPrefix(settingID(key), "setting-")).Class("link").Text("Reset").
				OnClick(func(app.Context, app.Event) { p.reset(key) })
		}),
	)
}

func (p *settingsPage) fieldError(key string) app.UI {
	msg := p.errors[key]
	return app.If(msg != "", func() app.UI {
		return app.P().ID(settingID(key) + "-error").Class("field-error").Role("alert").Text(msg)
	})
}

// clientOnly keeps a user's value out of pre-rendered HTML: the server's
// encoder does not escape attribute values, so user text there could inject
// markup. In the browser, values are set through the DOM and are safe.
func clientOnly(v string) string {
	if app.IsServer {
		return ""
	}
	return v
}

// settingID is the element id of a setting's input: the key with "." as "-",
// so it works in CSS selectors.
func settingID(key string) string { return "setting-" + strings.ReplaceAll(key, ".", "-") }

// apply records a change, after checking it, and saves it in the background.
func (p *settingsPage) apply(key string, v any) {
	if p.errors == nil {
		p.errors = map[string]string{}
	}
	delete(p.errors, key)
	if key == core.KeyProxyURL {
		if msg := checkProxyURL(v.(string)); msg != "" {
			p.errors[key] = msg
			return
		}
	}
	if err := p.c.Config().Set(key, v); err != nil {
		p.errors[key] = notify.Message(err)
		return
	}
	p.persist()
}

func (p *settingsPage) reset(key string) {
	p.c.Config().Reset(key)
	delete(p.errors, key)
	p.persist()
}

// persist saves the settings, points the API at the chosen proxy and tells
// the shell to reconnect.
func (p *settingsPage) persist() {
	ctx := p.ctx
	c := p.c
	ctx.Async(func() {
		sctx, cancel := context.WithTimeout(ctx, storageTimeout)
		defer cancel()
		if err := c.Config().Save(sctx, c.Storage()); err != nil {
			notify.Fail(ctx, err)
			return
		}
		c.Retarget()
		ctx.NewAction(actionSettingsSaved)
	})
}

// checkProxyURL accepts "" (same origin) or an absolute http(s) URL without
// a path, query or credentials.
func checkProxyURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "":
		return "Proxy URL must be a full address such as https://proxy.example.com."
	case u.Scheme != "https" && u.Scheme != "http":
		return "Proxy URL must start with https:// (or http:// for a proxy on this machine)."
	case u.User != nil:
		return "Proxy URL must not contain a user name or password: use the access token field."
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "Proxy URL must be the proxy's address only, without a path."
	}
	return ""
}
