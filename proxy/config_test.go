package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(getenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Simulated() {
		t.Error("no key should mean simulated mode")
	}
	if cfg.APIURL != bfl.DefaultAPIURL {
		t.Errorf("BFL_API_URL default %q, want the catalog's %q", cfg.APIURL, bfl.DefaultAPIURL)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ADDR", cfg.Addr, ":8080"},
		{"MAX_BODY_MB", cfg.MaxBodyMB, int64(256)},
		{"MAX_IMAGE_MB", cfg.MaxImageMB, int64(64)},
		{"POLL_HOSTS", strings.Join(cfg.PollHosts, ","), "api.bfl.ai,api.*.bfl.ai"},
		{"DELIVERY_HOSTS", strings.Join(cfg.DeliveryHosts, ","), "delivery.*.bfl.ai,*.bfl.ai,bfldeliveryprod.blob.core.windows.net"},
		{"UPSTREAM_TIMEOUT", cfg.UpstreamTimeout, 60 * time.Second},
		{"READ_TIMEOUT", cfg.ReadTimeout, 10 * time.Minute},
		{"SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, 30 * time.Second},
		{"HEADER_TIMEOUT", cfg.HeaderTimeout, 10 * time.Second},
		{"CONNECT_TIMEOUT", cfg.ConnectTimeout, 10 * time.Second},
		{"IDLE_TIMEOUT", cfg.IdleTimeout, 2 * time.Minute},
		{"MAX_HEADER_KB", cfg.MaxHeaderKB, 64},
		{"MAX_CONCURRENT", cfg.MaxConcurrent, 256},
		{"SITE_DIR", cfg.SiteDir, "build/site"},
		{"upstream host", cfg.upstream.Host, "api.us1.bfl.ai"},
		{"SIM_MAX_ACTIVE", cfg.Sim.MaxActive, 24},
		{"SIM_TRAIN_SECONDS", cfg.Sim.TrainDuration.D(), 60 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigValues(t *testing.T) {
	file := filepath.Join(t.TempDir(), "client.json")
	if err := os.WriteFile(file, []byte(`{"flags":{"legacy":true},"ui":{"theme":"dark"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(getenv(map[string]string{
		"BFL_API_KEY": " k ", "BFL_API_URL": "http://127.0.0.1:9000/", "CORS_ORIGINS": "https://a.example/, http://localhost:3000",
		"SIM_TRAIN_SECONDS": "2", "SIM_KEY": "ignored", "CONFIG_FILE": file, "MAX_BODY_MB": "1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Simulated() || cfg.APIKey != "k" {
		t.Errorf("key %q: want live mode with the trimmed key", cfg.APIKey)
	}
	if cfg.upstreamOrigin() != "http://127.0.0.1:9000" || cfg.upstream.Path != "" {
		t.Errorf("upstream %v", cfg.upstream)
	}
	if strings.Join(cfg.Origins, ",") != "https://a.example,http://localhost:3000" || cfg.Sim.TrainDuration.D() != 2*time.Second || cfg.Sim.Key != "" {
		t.Errorf("origins %v, train %v, sim key %q", cfg.Origins, cfg.Sim.TrainDuration, cfg.Sim.Key)
	}
	if cfg.client.Flags["legacy"] != true || cfg.client.UI["theme"] != "dark" {
		t.Errorf("CONFIG_FILE read as %+v", cfg.client)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	trailing := filepath.Join(dir, "trailing.json")
	unknown := filepath.Join(dir, "unknown.json")
	for name, text := range map[string]string{bad: `{"flags": [1,2]}`, trailing: `{"flags":{}} {"ui":{}}`, unknown: `{"flag":{}}`} {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ name, value string }{
		{"BFL_API_URL", "http://api.us1.bfl.ai"},
		{"BFL_API_URL", "api.us1.bfl.ai"},
		{"BFL_API_URL", "https://user:pw@api.us1.bfl.ai"},
		{"BFL_API_URL", "https://api.us1.bfl.ai/?x=1"},
		{"BFL_API_URL", "ftp://api.us1.bfl.ai"},
		{"BFL_API_URL", "https://api.us1.bfl.ai/v1/"},
		{"ADDR", "8080"},
		{"CORS_ORIGINS", "app.example.com"},
		{"CORS_ORIGINS", "https://app.example.com/path"},
		{"MAX_BODY_MB", "abc"},
		{"MAX_BODY_MB", "0"},
		{"MAX_BODY_MB", "-5"},
		{"MAX_IMAGE_MB", "0"},
		{"MAX_CONCURRENT", "0"},
		{"MAX_CONCURRENT", "many"},
		{"UPSTREAM_TIMEOUT", "60"},
		{"UPSTREAM_TIMEOUT", "-1s"},
		{"READ_TIMEOUT", "soon"},
		{"WRITE_TIMEOUT", "0s"},
		{"SHUTDOWN_TIMEOUT", "x"},
		{"HEADER_TIMEOUT", "0s"},
		{"CONNECT_TIMEOUT", "10"},
		{"IDLE_TIMEOUT", "-2m"},
		{"MAX_HEADER_KB", "0"},
		{"MAX_HEADER_KB", "2048"},
		{"CONFIG_FILE", filepath.Join(t.TempDir(), "missing.json")},
		{"CONFIG_FILE", bad},
		{"CONFIG_FILE", trailing},
		{"CONFIG_FILE", unknown},
		{"SIM_TRAIN_SECONDS", "-3"},
		{"SIM_MAX_ACTIVE", "lots"},
		{"SIM_MAX_ACTIVE", "0"},
		{"SIM_CREDITS", "-5"},
		{"SIM_CREDITS", "plenty"},
	} {
		_, err := loadConfig(getenv(map[string]string{c.name: c.value}))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.name+":") {
			t.Errorf("%s=%q: error %v should name the variable", c.name, c.value, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%q: error spans lines: %q", c.name, c.value, err)
		}
	}
}

func TestConfigFileMustHoldNoSecrets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "client.json")
	if err := os.WriteFile(file, []byte(`{"flags":{},"ui":{"note":"key is sk-live-123"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, vars := range []map[string]string{
		{"BFL_API_KEY": "sk-live-123", "CONFIG_FILE": file},
		{"PROXY_TOKEN": "sk-live-123", "CONFIG_FILE": file},
	} {
		_, err := loadConfig(getenv(vars))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "CONFIG_FILE") || strings.Contains(err.Error(), "sk-live-123") {
			t.Errorf("%v: error %v should refuse the file without repeating the secret", vars, err)
		}
	}
}

// A bad POLL_HOSTS pattern only matters in live mode, where it is used.
func TestBadHostPatternStopsRun(t *testing.T) {
	for _, name := range []string{"POLL_HOSTS", "DELIVERY_HOSTS"} {
		err := Run(t.Context(), getenv(map[string]string{"BFL_API_KEY": "k", name: "*.ai", "ADDR": "127.0.0.1:0"}), &syncBuffer{}, &syncBuffer{})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=*.ai: Run returned %v, want a configuration error naming it", name, err)
		}
	}
}

func TestRunReportsBusyAddress(t *testing.T) {
	p := start(t, nil)
	addr := strings.TrimPrefix(p.base, "http://")
	err := Run(t.Context(), getenv(map[string]string{"ADDR": addr}), &syncBuffer{}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "ADDR") {
		t.Fatalf("second Run on %s returned %v, want an ADDR error", addr, err)
	}
}
