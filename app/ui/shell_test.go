package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/container"
	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/ui/notify"
	"github.com/fluxforge/fluxforge/app/ui/uitest"
)

func TestShellShowsTheTabOfThePath(t *testing.T) {
	for path, want := range map[string]string{"/": "tab-finetune", "/finetune": "tab-finetune", "/models": "tab-models", "/generate": "tab-generate", "/nowhere": "tab-finetune"} {
		s := newShell(container.New(container.Options{}))
		s.path = path
		html := uitest.Render(t, s)
		if !strings.Contains(html, `id="`+want+`"`) {
			t.Errorf("%s: the page does not show %s", path, want)
		}
		current := "nav-" + strings.TrimPrefix(want, "tab-")
		if tag := tagWithID(html, current); !strings.Contains(tag, `aria-current="page"`) {
			t.Errorf("%s: link %s is %q, want it current", path, current, tag)
		}
	}
	c := container.New(container.Options{})
	if err := c.Config().Set(core.KeyStartTab, "generate"); err != nil {
		t.Fatal(err)
	}
	s := newShell(c)
	s.path = "/"
	if html := uitest.Render(t, s); !strings.Contains(html, `id="tab-generate"`) || !strings.Contains(tagWithID(html, "nav-generate"), `aria-current="page"`) {
		t.Error("/ does not open the start tab chosen in the settings")
	}
	s = newShell(container.New(container.Options{}))
	s.path = SettingsPath
	html := uitest.Render(t, s)
	if !strings.Contains(html, `id="settings"`) || strings.Contains(html, `class="tab-link active"`) {
		t.Error("settings page: no settings, or a tab still marked current")
	}
}

// tagWithID returns the opening tag of the element with the id; attribute
// order is not stable, so tests look inside the tag.
func tagWithID(html, id string) string {
	i := strings.Index(html, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(html[:i], "<")
	end := strings.Index(html[i:], ">")
	return html[start : i+end+1]
}

func TestHeaderStates(t *testing.T) {
	credits := 1234.5
	cases := []struct {
		name  string
		setup func(*shell)
		want  []string
	}{
		{"connecting", func(*shell) {}, []string{">connecting<", "credits …"}},
		{"simulated", func(s *shell) { s.health = core.Health{Mode: "simulated"}; s.credits = &credits },
			[]string{">simulated<", "1234.50 credits", "about $12.35"}},
		{"live", func(s *shell) { s.health = core.Health{Mode: "live"} }, []string{">live<"}},
		{"offline", func(s *shell) { s.offline = true; s.health = core.Health{Mode: "live"} }, []string{">offline<"}},
		{"credits failed", func(s *shell) { s.creditsErr = "BFL refused the API key" }, []string{"credits ?", "BFL refused the API key"}},
		{"installable", func(s *shell) { s.installable = true }, []string{`id="install"`}},
		{"apple", func(s *shell) { s.installable, s.apple = true, true }, []string{"Share, then Add to Home Screen"}},
		{"update", func(s *shell) { s.updateReady = true }, []string{`id="update-banner"`, "Reload to update"}},
		{"volatile", func(s *shell) { s.volatile = true }, []string{`id="volatile-banner"`}},
	}
	for _, c := range cases {
		s := newShell(container.New(container.Options{}))
		c.setup(s)
		html := uitest.Render(t, s)
		for _, w := range c.want {
			if !strings.Contains(html, w) {
				t.Errorf("%s: page lacks %q", c.name, w)
			}
		}
		if c.name == "connecting" && (strings.Contains(html, `id="install"`) || strings.Contains(html, "update-banner")) {
			t.Errorf("install or update shown without cause")
		}
	}
}

func TestToastsShowAndDismiss(t *testing.T) {
	s := newShell(container.New(container.Options{}))
	s.toasts = []toast{{id: 1, Toast: notify.Toast{Kind: notify.Error, Message: "Out of credits"}}, {id: 2, Toast: notify.Toast{Kind: notify.Success, Message: "Saved"}}}
	html := uitest.Render(t, s)
	if !strings.Contains(html, "Out of credits") || !strings.Contains(html, "Saved") || !strings.Contains(html, `role="alert"`) {
		t.Fatalf("toasts not shown: %s", html)
	}
	s.dismiss(1)
	s.dismiss(99)
	if len(s.toasts) != 1 || s.toasts[0].id != 2 {
		t.Fatalf("after dismiss: %+v", s.toasts)
	}
}

func TestCheckProxyURL(t *testing.T) {
	for in, ok := range map[string]bool{
		"": true, "https://proxy.example.com": true, "http://127.0.0.1:8080": true, "https://p.example.com/": true,
		"proxy.example.com": false, "ftp://x": false, "https://u:p@p.example.com": false,
		"https://p.example.com/api": false, "https://p.example.com/?a=1": false, "::": false,
	} {
		if got := checkProxyURL(in) == ""; got != ok {
			t.Errorf("checkProxyURL(%q) accepted=%v, want %v (%s)", in, got, ok, checkProxyURL(in))
		}
	}
}

// TestPrerenderKeepsUserDataOut: the server's encoder does not escape
// attribute values, so a user's value must never reach pre-rendered HTML.
func TestPrerenderKeepsUserDataOut(t *testing.T) {
	c := container.New(container.Options{})
	const hostile = `https://x.example" onfocus="alert(1)`
	if err := c.Config().Set(core.KeyProxyURL, hostile); err != nil {
		t.Fatal(err)
	}
	Routes(c)
	srv := httptest.NewServer(&app.Handler{Name: "FluxForge", Version: "test"})
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range Paths() {
		res, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d", p, res.StatusCode)
		}
		if strings.Contains(string(body), "alert(1)") {
			t.Errorf("%s: pre-rendered HTML carries the user's value", p)
		}
		if !strings.Contains(string(body), `id="shell"`) {
			t.Errorf("%s: shell not pre-rendered", p)
		}
	}
}

func TestPathsCoverEveryTab(t *testing.T) {
	got := strings.Join(Paths(), " ")
	if got != "/ /finetune /models /generate /settings" {
		t.Fatalf("Paths() = %s", got)
	}
}
