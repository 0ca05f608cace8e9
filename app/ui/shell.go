package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
	"github.com/fluxforge/fluxforge/app/ui/finetune"
	"github.com/fluxforge/fluxforge/app/ui/notify"
)

const (
	// updateInterval is how often the app asks for a new version on its own:
	// v10 has no automatic check and iOS rarely checks by itself.
	updateInterval = 20 * time.Minute
	// proxyWait bounds how long the tabs wait for the proxy's defaults before
	// they open with the app's own.
	proxyWait = 3 * time.Second
	// storageTimeout bounds one save of settings to the browser storage.
	storageTimeout = 10 * time.Second
	// actionSettingsSaved tells the shell to reconnect after a settings change.
	actionSettingsSaved = "fluxforge/settings-saved"
)

// shell is the one root component of every route; navigation between tabs
// updates it in place, so the header's state survives tab switches.
type shell struct {
	app.Compo

	c   *container.Container
	ctx app.Context

	path        string
	ready       bool // settings loaded: tabs may do I/O
	volatile    bool // storage is memory only
	health      core.Health
	proxy       core.ProxyConfig
	offline     bool
	credits     *float64
	creditsErr  string
	toasts      []toast
	nextToast   int
	updateReady bool
	installable bool
	apple       bool
	stopChecks  func()
}

type toast struct {
	id int
	notify.Toast
}

func newShell(c *container.Container) *shell { return &shell{c: c, path: "/"} }

// OnNav picks the section from the URL, on the server (pre-render) and in the browser.
func (s *shell) OnNav(ctx app.Context) {
	s.path = ctx.Page().URL().Path
	s.setTitle(ctx)
}

// setTitle names the page after the section on screen, for tabs, history and search engines.
func (s *shell) setTitle(ctx app.Context) {
	if s.path == SettingsPath {
		ctx.Page().SetTitle("Settings · FluxForge")
		ctx.Page().SetDescription("Proxy, access token and feature settings of FluxForge.")
		return
	}
	t := s.current()
	ctx.Page().SetTitle("%s · FluxForge", t.title)
	ctx.Page().SetDescription("%s", t.desc)
}

// OnMount runs only in the browser: load the user's settings, then reach the proxy.
func (s *shell) OnMount(ctx app.Context) {
	s.ctx = ctx
	s.installable = ctx.IsAppInstallable()
	s.apple = ctx.IsAppleBrowser()
	s.updateReady = ctx.AppUpdateAvailable()
	ctx.Handle(notify.ActionToast, s.onToast)
	ctx.Handle(notify.ActionRefreshCredits, func(app.Context, app.Action) { s.refreshCredits() })
	ctx.Handle(actionSettingsSaved, func(app.Context, app.Action) { s.connect() })
	s.stopChecks = startUpdateChecks(ctx)
	ctx.Async(func() {
		// A storage that never answers (an upgrade blocked by another tab)
		// must not keep the tabs hidden: after the timeout they open with defaults.
		sctx, cancelLoad := context.WithTimeout(ctx, storageTimeout)
		loadErr := s.c.Config().Load(sctx, s.c.Storage())
		volatile, volErr := s.c.StorageVolatile(sctx)
		cancelLoad()
		s.c.Retarget()
		// Trainings left running before a reload are resumed and announced
		// whichever tab the app opens on, not only once Finetune is visited.
		s.c.Finetuning().Jobs.OnEnd(func(j finetuning.Job) { finetune.Announce(ctx, j) })
		pctx, cancel := context.WithTimeout(ctx, proxyWait)
		pc, pcErr := s.c.API().ProxyConfig(pctx)
		cancel()
		applyErr := s.c.Config().ApplyProxy(pc)
		ctx.Dispatch(func(ctx app.Context) {
			s.ready, s.volatile, s.proxy = true, volatile, pc
			s.setTitle(ctx) // the user's start tab may differ from the default
			for _, err := range []error{loadErr, volErr, applyErr} {
				if err != nil {
					s.addToast(notify.Toast{Kind: notify.Error, Message: notify.Message(err)})
				}
			}
			s.offline = pcErr != nil
		})
		s.connect()
	})
}

func (s *shell) OnDismount() {
	if s.stopChecks != nil {
		s.stopChecks()
	}
}

// OnAppUpdate fires when a new version has been installed in the background.
func (s *shell) OnAppUpdate(ctx app.Context) { s.updateReady = ctx.AppUpdateAvailable() }

// OnAppInstallChange fires when the browser offers, or stops offering, installation.
func (s *shell) OnAppInstallChange(ctx app.Context) { s.installable = ctx.IsAppInstallable() }

// connect asks the proxy for its mode, its defaults and the credit balance.
func (s *shell) connect() {
	ctx := s.ctx
	ctx.Async(func() {
		h, err := s.c.API().Health(ctx)
		pc, pcErr := s.c.API().ProxyConfig(ctx)
		if pcErr == nil {
			pcErr = s.c.Config().ApplyProxy(pc)
		}
		ctx.Dispatch(func(ctx app.Context) {
			s.offline = err != nil
			if err == nil {
				s.health = h
			}
			if pcErr == nil {
				s.proxy = pc
			}
		})
		if err == nil {
			s.refreshCredits()
		}
	})
}

// refreshCredits fetches the balance; tabs trigger it after a paid submit.
func (s *shell) refreshCredits() {
	ctx := s.ctx
	ctx.Async(func() {
		var c bfl.Credits
		err := s.c.API().Get(ctx, "credits", nil, &c)
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				s.creditsErr = notify.Message(err)
				return
			}
			s.credits, s.creditsErr = &c.Credits, ""
		})
	})
}

func (s *shell) onToast(ctx app.Context, a app.Action) {
	if t, ok := a.Value.(notify.Toast); ok {
		s.addToast(t)
	}
}

// addToast shows t; errors stay longer, since they usually need reading.
func (s *shell) addToast(t notify.Toast) {
	s.nextToast++
	id := s.nextToast
	s.toasts = append(s.toasts, toast{id: id, Toast: t})
	d := 5 * time.Second
	if t.Kind == notify.Error {
		d = 12 * time.Second
	}
	s.ctx.After(d, func(app.Context) { s.dismiss(id) })
}

func (s *shell) dismiss(id int) {
	for i, t := range s.toasts {
		if t.id == id {
			s.toasts = append(s.toasts[:i], s.toasts[i+1:]...)
			return
		}
	}
}

func (s *shell) Render() app.UI {
	// data-ready marks the moment the tabs may show the user's work: the
	// stylesheet and load-time measurements key on it.
	return app.Div().ID("shell").Class("shell").DataSet("ready", s.ready).Body(
		app.If(s.updateReady, func() app.UI {
			return app.Div().ID("update-banner").Class("banner").Role("status").Body(
				app.Span().Text("A new version of FluxForge is ready."),
				app.Button().ID("update-reload").Class("button").Text("Reload to update").OnClick(func(ctx app.Context, _ app.Event) { ctx.Reload() }),
			)
		}),
		app.If(s.volatile, func() app.UI {
			return app.Div().ID("volatile-banner").Class("banner warn").Role("alert").
				Text("This browser does not keep data for this site: your work is lost when the page closes.")
		}),
		app.Header().Class("top").Body(
			app.A().Class("brand").Href("/").Body(
				app.Img().Src("/web/icon.svg").Alt("").Width(28).Height(28),
				app.Span().Text("FluxForge"),
			),
			s.renderBadge(),
			s.renderCredits(),
			app.Div().Class("spacer"),
			s.renderInstall(),
			app.A().ID("settings-link").Class("icon-link").Href(SettingsPath).
				Aria("current", ariaCurrent(s.path == SettingsPath)).Text("Settings"),
		),
		s.renderTabs(),
		app.Main().ID("content").Class("content").Body(s.renderContent()),
		app.Div().ID("toasts").Class("toasts").Aria("live", "polite").Body(
			app.Range(s.toasts).Slice(func(i int) app.UI {
				t := s.toasts[i]
				return app.Div().Class("toast "+string(t.Kind)).Role(toastRole(t.Kind)).Body(
					app.Span().Class("toast-text").Text(t.Message),
					app.Button().Class("toast-close").Aria("label", "Dismiss").Text("×").
						OnClick(func(app.Context, app.Event) { s.dismiss(t.id) }),
				)
			}),
		),
	)
}

func toastRole(k notify.Kind) string {
	if k == notify.Error {
		return "alert"
	}
	return "status"
}

func ariaCurrent(on bool) string {
	if on {
		return "page"
	}
	return "false"
}

func (s *shell) renderBadge() app.UI {
	text, class, title := "connecting", "badge", "Asking the proxy which mode it runs in."
	switch {
	case s.offline:
		text, class, title = "offline", "badge offline", "The proxy cannot be reached: your saved work is still here."
	case s.health.Simulated():
		text, class, title = "simulated", "badge simulated", "No BFL key on the proxy: a built-in simulator answers. Nothing is charged."
	case s.health.Mode == "live":
		text, class, title = "live", "badge live", "Requests go to BFL and cost credits."
	}
	return app.Span().ID("mode-badge").Class(class).Title("%s", title).Text(text)
}

func (s *shell) renderCredits() app.UI {
	label := "credits …"
	title := "Your BFL credit balance (1 credit = 0.01 USD)."
	if s.credits != nil {
		label = fmt.Sprintf("%.2f credits", *s.credits)
		title = fmt.Sprintf("%.2f credits, about $%.2f. Click to refresh.", *s.credits, *s.credits/100)
	}
	if s.creditsErr != "" {
		label, title = "credits ?", s.creditsErr
	}
	return app.Button().ID("credits").Class("credits").Title("%s", title).Text(label).
		OnClick(func(app.Context, app.Event) { s.refreshCredits() })
}

func (s *shell) renderInstall() app.UI {
	switch {
	case !s.installable:
		return app.Text("")
	case s.apple:
		return app.Span().ID("install-hint").Class("install-hint").Text("To install: Share, then Add to Home Screen")
	default:
		return app.Button().ID("install").Class("button").Text("Install").
			OnClick(func(ctx app.Context, _ app.Event) { ctx.ShowAppInstallPrompt() })
	}
}

// current is the tab on screen: "/" opens the start tab from the settings.
func (s *shell) current() tab {
	if s.path == "/" {
		return startTab(s.c)
	}
	return tabFor(s.path)
}

func (s *shell) renderTabs() app.UI {
	current := s.current().path
	return app.Nav().Class("tabs").Aria("label", "Sections").Body(
		app.Range(tabs()).Slice(func(i int) app.UI {
			t := tabs()[i]
			active := s.path != SettingsPath && t.path == current
			class := "tab-link"
			if active {
				class += " active"
			}
			return app.A().ID("nav"+strings.ReplaceAll(t.path, "/", "-")).Class(class).Href(t.path).
				Aria("current", ariaCurrent(active)).Text(t.title)
		}),
	)
}

func (s *shell) renderContent() app.UI {
	if s.path == SettingsPath {
		return newSettings(s.c).Props(s.health, s.proxy, s.offline)
	}
	// In the browser the tab waits for the user's settings (the proxy URL
	// may differ from the page's); the server pre-renders it straight away.
	if app.IsClient && !s.ready {
		return app.P().ID("loading").Class("muted").Text("Loading your work…")
	}
	return s.current().page(s.c)
}

// startUpdateChecks asks for a new version on a timer and whenever the page
// becomes visible again; the returned function stops both.
func startUpdateChecks(ctx app.Context) func() {
	done := make(chan struct{})
	doc := app.Window().Get("document")
	onVisible := app.FuncOf(func(app.Value, []app.Value) any {
		if doc.Get("visibilityState").String() == "visible" {
			app.TryUpdate()
		}
		return nil
	})
	doc.Call("addEventListener", "visibilitychange", onVisible)
	ctx.Async(func() {
		t := time.NewTicker(updateInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				app.TryUpdate()
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		doc.Call("removeEventListener", "visibilitychange", onVisible)
		onVisible.Release()
	}
}
