package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/fluxforge/fluxforge/proxy/sim"
)

// Config is the proxy's whole configuration, read from the environment.
// The simulator's settings are nested so one parse reads both.
type Config struct {
	// APIKey is BFL's key; empty means simulated mode.
	APIKey  string   `env:"BFL_API_KEY"`
	APIURL  string   `env:"BFL_API_URL" envDefault:"https://api.us1.bfl.ai"`
	Addr    string   `env:"ADDR" envDefault:":8080"`
	Token   string   `env:"PROXY_TOKEN"`
	Origins []string `env:"CORS_ORIGINS" envSeparator:","`

	MaxBodyMB  int64 `env:"MAX_BODY_MB" envDefault:"256"`
	MaxImageMB int64 `env:"MAX_IMAGE_MB" envDefault:"64"`
	// MaxHeaderKB caps a request's headers, which are read before any
	// other limit applies, and the head of every answer from upstream. The
	// app's requests and BFL's answers carry well under 4 KB; net/http's
	// 1 MB default would let each open connection pin a megabyte.
	MaxHeaderKB int `env:"MAX_HEADER_KB" envDefault:"64"`
	// PollHosts receive the key (polling_url hosts), so they are BFL's API
	// hosts only: a wider pattern such as *.bfl.ai would also match the
	// delivery hosts and any other site under BFL's domain. DeliveryHosts
	// never get the key; *.bfl.ai is among them because sample hosts have
	// moved between BFL's own domains, and a sample the proxy refuses is an
	// image the user paid for and loses.
	PollHosts     []string `env:"POLL_HOSTS" envSeparator:"," envDefault:"api.bfl.ai,api.*.bfl.ai"`
	DeliveryHosts []string `env:"DELIVERY_HOSTS" envSeparator:"," envDefault:"delivery.*.bfl.ai,*.bfl.ai,bfldeliveryprod.blob.core.windows.net"`

	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"60s"`
	// ConnectTimeout bounds opening a connection upstream, TLS included;
	// UPSTREAM_TIMEOUT starts once the request is sent.
	ConnectTimeout  time.Duration `env:"CONNECT_TIMEOUT" envDefault:"10s"`
	ReadTimeout     time.Duration `env:"READ_TIMEOUT" envDefault:"10m"`
	WriteTimeout    time.Duration `env:"WRITE_TIMEOUT" envDefault:"10m"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// HeaderTimeout bounds the wait for a request's headers on its own, so
	// a client that trickles them cannot hold a connection for READ_TIMEOUT.
	HeaderTimeout time.Duration `env:"HEADER_TIMEOUT" envDefault:"10s"`
	IdleTimeout   time.Duration `env:"IDLE_TIMEOUT" envDefault:"2m"`
	MaxConcurrent int           `env:"MAX_CONCURRENT" envDefault:"256"`

	// DebugAddr, when set, serves net/http/pprof there; loopback only.
	DebugAddr string `env:"DEBUG_ADDR"`

	SiteDir    string `env:"SITE_DIR" envDefault:"build/site"`
	ConfigFile string `env:"CONFIG_FILE"`

	Sim sim.Config

	// Derived by loadConfig.
	upstream *url.URL
	client   clientConfig
}

// clientConfig is what CONFIG_FILE holds and GET /api/config serves: feature
// flag and UI defaults for the PWA. It never holds secrets.
type clientConfig struct {
	Flags map[string]any `json:"flags"`
	UI    map[string]any `json:"ui"`
}

// Simulated reports whether the proxy runs the in-process simulator.
func (c *Config) Simulated() bool { return c.APIKey == "" }

// ErrConfig marks every configuration error; the message names the variable.
var ErrConfig = errors.New("configuration")

func configError(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, name, fmt.Sprintf(format, args...))
}

// loadConfig reads and checks the configuration. Every error names the
// variable at fault and the rule it broke.
func loadConfig(getenv func(string) string) (Config, error) {
	var cfg Config
	names := envNames(reflect.TypeFor[Config]())
	vars := make(map[string]string, len(names))
	for _, name := range names {
		if v := getenv(name); v != "" {
			vars[name] = v
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return Config{}, explainEnvError(err)
	}
	if err := cfg.check(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) check() error {
	c.APIKey = strings.TrimSpace(c.APIKey)
	// In-process the proxy is the gate: the simulator must accept what the
	// proxy forwards, so a SIM_KEY meant for a standalone simulator is ignored.
	c.Sim.Key = ""
	if err := c.Sim.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	u, err := url.Parse(c.APIURL)
	if err != nil {
		return configError("BFL_API_URL", "%q is not a URL: %v", c.APIURL, err)
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return configError("BFL_API_URL", "%q must look like https://api.us1.bfl.ai (scheme and host, no user, query or fragment)", c.APIURL)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return configError("BFL_API_URL", "%q must use https (plain http is only allowed for a loopback host)", c.APIURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if strings.HasSuffix(u.Path, "/v1") {
		return configError("BFL_API_URL", "%q should stop before /v1 (the proxy adds /v1/<endpoint> itself)", c.APIURL)
	}
	c.upstream = u
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return configError("ADDR", "%q must be host:port or :port (%v)", c.Addr, err)
	}
	if c.DebugAddr != "" {
		// Profiles show the process's internals, its memory included.
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if err != nil || !loopback(host) {
			return configError("DEBUG_ADDR", "%q must be a loopback host:port like 127.0.0.1:6060 (it serves profiles of the process)", c.DebugAddr)
		}
	}
	for i, o := range c.Origins {
		ou, err := url.Parse(strings.TrimSpace(o))
		if err != nil || (ou.Scheme != "https" && ou.Scheme != "http") || ou.Host == "" || (ou.Path != "" && ou.Path != "/") || ou.User != nil || ou.RawQuery != "" {
			return configError("CORS_ORIGINS", "%q is not an origin like https://app.example.com (scheme and host only)", o)
		}
		// Compare with what browsers send: no trailing slash, the host in
		// lower case, no default port.
		host := strings.ToLower(ou.Host)
		if p := ou.Port(); (ou.Scheme == "https" && p == "443") || (ou.Scheme == "http" && p == "80") {
			host = strings.TrimSuffix(host, ":"+p)
		}
		c.Origins[i] = ou.Scheme + "://" + host
	}
	for name, v := range map[string]int64{"MAX_BODY_MB": c.MaxBodyMB, "MAX_IMAGE_MB": c.MaxImageMB} {
		if v < 1 || v > 1<<20 {
			return configError(name, "%d must be between 1 and 1048576 (megabytes)", v)
		}
	}
	if c.MaxHeaderKB < 1 || c.MaxHeaderKB > 1024 {
		return configError("MAX_HEADER_KB", "%d must be between 1 and 1024 (kilobytes)", c.MaxHeaderKB)
	}
	if c.MaxConcurrent < 1 {
		return configError("MAX_CONCURRENT", "%d must be at least 1", c.MaxConcurrent)
	}
	for name, d := range map[string]time.Duration{
		"UPSTREAM_TIMEOUT": c.UpstreamTimeout, "READ_TIMEOUT": c.ReadTimeout,
		"WRITE_TIMEOUT": c.WriteTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"HEADER_TIMEOUT": c.HeaderTimeout, "IDLE_TIMEOUT": c.IdleTimeout, "CONNECT_TIMEOUT": c.ConnectTimeout,
	} {
		if d <= 0 {
			return configError(name, "%s must be a positive duration like 30s", d)
		}
	}
	if c.ConfigFile != "" {
		b, err := os.ReadFile(c.ConfigFile)
		if err != nil {
			return configError("CONFIG_FILE", "%v", err)
		}
		// Every browser can read this file through /api/config. Secrets
		// shorter than 8 characters would match ordinary words.
		for name, secret := range map[string]string{"BFL_API_KEY": c.APIKey, "PROXY_TOKEN": c.Token} {
			if len(secret) >= 8 && strings.Contains(string(b), secret) {
				return configError("CONFIG_FILE", "%s contains the %s; it is served to browsers and must hold no secrets", c.ConfigFile, name)
			}
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c.client); err != nil {
			return configError("CONFIG_FILE", "%s is not {\"flags\":{...},\"ui\":{...}}: %v", c.ConfigFile, err)
		}
		if dec.More() {
			return configError("CONFIG_FILE", "%s has text after its JSON object", c.ConfigFile)
		}
	}
	if c.client.Flags == nil {
		c.client.Flags = map[string]any{}
	}
	if c.client.UI == nil {
		c.client.UI = map[string]any{}
	}
	return nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// upstreamOrigin is the scheme://host:port of BFL_API_URL, always an
// allowed polling and delivery origin.
func (c *Config) upstreamOrigin() string {
	return c.upstream.Scheme + "://" + c.upstream.Host
}

// envNames lists every variable the struct reads, nested structs included.
func envNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			names = append(names, name)
		} else if f.Type.Kind() == reflect.Struct {
			names = append(names, envNames(f.Type)...)
		}
	}
	return names
}

// envVarOf finds the variable behind a struct field name, for parse errors
// that only name the field.
func envVarOf(t reflect.Type, field string) string {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == field {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			return name
		}
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
			if name := envVarOf(f.Type, field); name != "" {
				return name
			}
		}
	}
	return ""
}

// explainEnvError turns caarlos0/env's errors into one line naming the
// variable and what was wrong with its value.
func explainEnvError(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if errors.As(err, &pe) {
		name := envVarOf(reflect.TypeFor[Config](), pe.Name)
		typ := pe.Type
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		want := typ.String()
		switch typ {
		case reflect.TypeFor[time.Duration]():
			want = "a duration like 30s or 10m"
		case reflect.TypeFor[sim.Duration]():
			want = "seconds like 60 or a duration like 1m"
		case reflect.TypeFor[int](), reflect.TypeFor[int64]():
			want = "a whole number"
		case reflect.TypeFor[float64]():
			want = "a number"
		}
		return configError(name, "want %s (%v)", want, pe.Err)
	}
	return fmt.Errorf("%w: %w", ErrConfig, err)
}
