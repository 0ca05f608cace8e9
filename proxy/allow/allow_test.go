package allow

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func defaultList(t testing.TB) *List {
	t.Helper()
	l, err := New([]string{"*.bfl.ai", "delivery.*.bfl.ai", "bfldeliveryprod.blob.core.windows.net", "*.cdn.example.com:8443"},
		[]string{"http://127.0.0.1:9000"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCheckAccepts(t *testing.T) {
	l := defaultList(t)
	for _, raw := range []string{
		"https://api.us1.bfl.ai/v1/get_result?id=1",
		"https://api.eu4.bfl.ai/v1/get_result?id=1",
		"https://API.US1.BFL.AI/v1/get_result",
		"https://api.us1.bfl.ai:443/v1/get_result",
		"https://delivery.eu1.bfl.ai/results/x.jpeg?sig=abc",
		"https://bfldeliveryprod.blob.core.windows.net/results/x.jpeg",
		"https://img.cdn.example.com:8443/a.png",
		"http://127.0.0.1:9000/v1/get_result?id=1",
		"HTTP://127.0.0.1:9000/x",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if err := l.Check(u); err != nil {
			t.Errorf("Check(%s) = %v, want nil", raw, err)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	l := defaultList(t)
	cases := []struct {
		raw  string
		rule error
	}{
		{"http://api.us1.bfl.ai/v1/get_result", ErrScheme},
		{"ftp://api.us1.bfl.ai/x", ErrScheme},
		{"https://bfl.ai/x", ErrNotListed},
		{"https://bfl.ai.evil.com/x", ErrNotListed},
		{"https://evilbfl.ai/x", ErrNotListed},
		{"https://api.us1.bfl.ai.evil.com/x", ErrNotListed},
		{"https://api.us1.bfl.ai@evil.com/x", ErrUserinfo},
		{"https://user:pass@api.us1.bfl.ai/x", ErrUserinfo},
		{"https://api.us1.bfl.ai:8443/x", ErrPort},
		{"https://api.us1.bfl.ai:0443/x", ErrPort},
		{"https://img.cdn.example.com/a.png", ErrPort},
		{"https://api.us1.bfl.ai./x", ErrHost},
		{"https://api..bfl.ai/x", ErrHost},
		{"https://api_x.bfl.ai/x", ErrHost},
		{"https://-api.bfl.ai/x", ErrHost},
		{"https://évil.bfl.ai/x", ErrHost},
		{"https://xn--vil-bpa.bfl.ai.evil/x", ErrNotListed},
		{"https://127.0.0.1/x", ErrIP},
		{"https://2130706433/x", ErrIP},
		{"https://0x7f000001/x", ErrIP},
		{"https://0177.0.0.1/x", ErrIP},
		{"https://127.1/x", ErrIP},
		{"https://[::1]/x", ErrIP},
		{"https://[::ffff:127.0.0.1]/x", ErrIP},
		{"https://[fe80::1%25eth0]/x", ErrIP},
		{"https://1.2.3.bfl.ai.4/x", ErrIP},
		{"http://127.0.0.1:9001/x", ErrScheme},
		{"https://127.0.0.1:9000/x", ErrIP},
		{"http://localhost:9000/x", ErrScheme},
		{"https:api.us1.bfl.ai", ErrHost},
		{"/v1/get_result", ErrHost},
		{"https://api.us1.bfl.ai:/x", ErrPort},
		{"https://delivery.bfl.ai.windows.net/x", ErrNotListed},
		{"https://blob.core.windows.net/x", ErrNotListed},
	}
	for _, c := range cases {
		u, err := url.Parse(c.raw)
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		err = l.Check(u)
		if !errors.Is(err, c.rule) {
			t.Errorf("Check(%s) = %v, want %v", c.raw, err, c.rule)
		}
	}
}

func TestErrorNamesTheList(t *testing.T) {
	l := defaultList(t)
	err := l.Check(&url.URL{Scheme: "https", Host: "evil.com"})
	if err == nil || !strings.Contains(err.Error(), "*.bfl.ai") || !strings.Contains(err.Error(), "evil.com") {
		t.Fatalf("error %v should name the host and the allowed patterns", err)
	}
}

func TestMiddleWildcardIsOneLabel(t *testing.T) {
	l, err := New([]string{"delivery.*.bfl.ai"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for raw, ok := range map[string]bool{
		"https://delivery.us1.bfl.ai/x":   true,
		"https://delivery.a.b.bfl.ai/x":   false,
		"https://delivery.bfl.ai/x":       false,
		"https://x.delivery.us1.bfl.ai/x": false,
		"https://api.us1.bfl.ai/x":        false,
	} {
		u, _ := url.Parse(raw)
		if got := l.Check(u) == nil; got != ok {
			t.Errorf("Check(%s) accepted=%v, want %v", raw, got, ok)
		}
	}
}

func TestNewRefusesBadPatterns(t *testing.T) {
	for _, p := range []string{"*", "*.ai", "bfl.*", "a*.bfl.ai", "api.bfl.ai:99999", "api.bfl.ai:", "127.0.0.1", "api bfl.ai", "exa%6dple.com"} {
		if _, err := New([]string{p}, nil); !errors.Is(err, ErrPattern) {
			t.Errorf("New(%q) = %v, want ErrPattern", p, err)
		}
	}
	for _, o := range []string{"ftp://x.com", "http://u@x.com", "127.0.0.1:9000"} {
		if _, err := New(nil, []string{o}); !errors.Is(err, ErrPattern) {
			t.Errorf("New(origin %q) = %v, want ErrPattern", o, err)
		}
	}
	if _, err := New([]string{" ", ""}, nil); !errors.Is(err, ErrPattern) {
		t.Errorf("an empty list should be refused, got %v", err)
	}
}

// FuzzAllow feeds arbitrary URLs to Check. It must never panic, and whatever
// it accepts must be https on a host under one of the listed names (or the
// exact local origin), with no userinfo and no IP literal.
func FuzzAllow(f *testing.F) {
	for _, s := range []string{
		"https://api.us1.bfl.ai/v1/get_result?id=1", "https://delivery.eu1.bfl.ai/x", "http://127.0.0.1:9000/x",
		"https://a@api.bfl.ai", "https://0x7f000001/", "https://[::1]:443/", "https://api.bfl.ai.:443",
		"https://bfldeliveryprod.blob.core.windows.net/a", "https://img.cdn.example.com:8443/a.png", "https://127.1",
	} {
		f.Add(s)
	}
	l := defaultList(f)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if l.Check(u) != nil {
			return
		}
		if u.User != nil {
			t.Fatalf("accepted userinfo: %q", raw)
		}
		host := strings.ToLower(u.Hostname())
		if strings.EqualFold(u.Scheme, "http") && host == "127.0.0.1" && (u.Port() == "9000") {
			return
		}
		if !strings.EqualFold(u.Scheme, "https") {
			t.Fatalf("accepted scheme %q: %q", u.Scheme, raw)
		}
		port := u.Port()
		switch {
		case strings.HasSuffix(host, ".cdn.example.com") && port == "8443":
		case port != "" && port != "443":
			t.Fatalf("accepted port %q: %q", port, raw)
		case strings.HasSuffix(host, ".bfl.ai"), host == "bfldeliveryprod.blob.core.windows.net":
		default:
			t.Fatalf("accepted host %q: %q", host, raw)
		}
		for _, c := range host {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("accepted host with %q: %q", c, raw)
			}
		}
	})
}
