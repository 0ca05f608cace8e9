package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// Where a configuration value comes from, weakest first.
const (
	SourceDefault = "default" // written in this code
	SourceProxy   = "proxy"   // published by the proxy (/api/config)
	SourceUser    = "user"    // chosen in Settings
)

// Setting keys. Flags are "flag.<name>"; UI defaults the proxy may set are "ui.<name>".
const (
	KeyProxyURL   = "proxy_url"
	KeyProxyToken = "proxy_token"
	KeyStartTab   = "ui.start_tab"

	flagPrefix = "flag."
	uiPrefix   = "ui."
)

// settingsRecord is the key of the user's values in StoreSettings.
const settingsRecord = "user"

// Setting describes one configurable value for the settings page.
type Setting struct {
	Key     string
	Label   string
	Hint    string
	Default any // string, bool or float64: the type every source must match
}

// Value is a resolved setting and the source it came from.
type Value struct {
	Value  any
	Source string
}

// Config resolves each setting as default < proxy < user. It is safe for
// concurrent use: services read it from their own goroutines.
type Config struct {
	settings []Setting

	mu    sync.RWMutex
	proxy map[string]any
	user  map[string]any
}

// NewConfig returns the configuration with every setting at its default.
func NewConfig() *Config {
	s := []Setting{
		{Key: KeyProxyURL, Label: "Proxy URL", Default: "",
			Hint: "Where the FluxForge proxy runs, e.g. https://proxy.example.com. Empty: the site this app was loaded from."},
		{Key: KeyProxyToken, Label: "Proxy access token", Default: "",
			Hint: "Only if the proxy was started with PROXY_TOKEN. This is not your BFL key: that stays on the proxy."},
		{Key: KeyStartTab, Label: "Start tab", Default: "finetune",
			Hint: "The tab the app opens at its bare address: finetune, models or generate."},
	}
	for _, f := range flagInfos() {
		s = append(s, Setting{Key: flagPrefix + f.Name, Label: f.Label, Hint: f.Hint, Default: f.Default})
	}
	return &Config{settings: s, proxy: map[string]any{}, user: map[string]any{}}
}

// Settings lists every setting in display order.
func (c *Config) Settings() []Setting { return append([]Setting(nil), c.settings...) }

func (c *Config) setting(key string) (Setting, bool) {
	for _, s := range c.settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// Get resolves key; an unknown key gives a zero Value.
func (c *Config) Get(key string) Value {
	s, ok := c.setting(key)
	if !ok {
		return Value{}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if v, ok := c.user[key]; ok {
		return Value{Value: v, Source: SourceUser}
	}
	if v, ok := c.proxy[key]; ok {
		return Value{Value: v, Source: SourceProxy}
	}
	return Value{Value: s.Default, Source: SourceDefault}
}

// String returns a string setting ("" if key is not one).
func (c *Config) String(key string) string {
	s, _ := c.Get(key).Value.(string)
	return s
}

// Bool returns a boolean setting (false if key is not one).
func (c *Config) Bool(key string) bool {
	b, _ := c.Get(key).Value.(bool)
	return b
}

// check refuses unknown keys and values whose type differs from the default's.
func (c *Config) check(key string, v any) error {
	s, ok := c.setting(key)
	if !ok {
		return &ConfigError{Key: key, Err: errors.New("no such setting")}
	}
	if fmt.Sprintf("%T", v) != fmt.Sprintf("%T", s.Default) {
		return &ConfigError{Key: key, Err: fmt.Errorf("must be a %T, got %T", s.Default, v)}
	}
	return nil
}

// Set records the user's choice for key.
func (c *Config) Set(key string, v any) error {
	if err := c.check(key, v); err != nil {
		return err
	}
	c.mu.Lock()
	c.user[key] = v
	c.mu.Unlock()
	return nil
}

// Reset drops the user's choice, so the proxy's value or the default applies again.
func (c *Config) Reset(key string) {
	c.mu.Lock()
	delete(c.user, key)
	c.mu.Unlock()
}

// ApplyProxy takes the flag and UI defaults the proxy publishes, replacing
// earlier ones. Keys this app does not know are ignored (a newer proxy may
// publish more); a value of the wrong type is skipped and reported.
func (c *Config) ApplyProxy(pc ProxyConfig) error {
	next := map[string]any{}
	var errs []error
	add := func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if _, ok := c.setting(key); !ok {
				continue
			}
			if err := c.check(key, v); err != nil {
				errs = append(errs, err)
				continue
			}
			next[key] = v
		}
	}
	add(flagPrefix, pc.Flags)
	add(uiPrefix, pc.UI)
	c.mu.Lock()
	c.proxy = next
	c.mu.Unlock()
	return errors.Join(errs...)
}

// Load restores the user's saved choices. Nothing saved yet is not an error;
// a saved value that no longer fits its setting is dropped and reported.
func (c *Config) Load(ctx context.Context, st Storage) error {
	saved := map[string]any{}
	if err := st.Get(ctx, StoreSettings, settingsRecord, &saved); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("load settings: %w", err)
	}
	user := map[string]any{}
	var errs []error
	for k, v := range saved {
		if err := c.check(k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		user[k] = v
	}
	c.mu.Lock()
	c.user = user
	c.mu.Unlock()
	return errors.Join(errs...)
}

// Save stores the user's choices.
func (c *Config) Save(ctx context.Context, st Storage) error {
	c.mu.RLock()
	user := maps.Clone(c.user)
	c.mu.RUnlock()
	if err := st.Put(ctx, StoreSettings, settingsRecord, user); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}
