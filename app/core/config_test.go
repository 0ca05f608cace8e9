package core

import (
	"errors"
	"testing"
)

func TestConfigPrecedence(t *testing.T) {
	c := NewConfig()
	key := KeyStartTab
	if v := c.Get(key); v.Source != SourceDefault || v.Value != "finetune" {
		t.Fatalf("default: %+v", v)
	}
	if err := c.ApplyProxy(ProxyConfig{UI: map[string]any{"start_tab": "models"}}); err != nil {
		t.Fatal(err)
	}
	if v := c.Get(key); v.Source != SourceProxy || v.Value != "models" {
		t.Fatalf("proxy over default: %+v", v)
	}
	if err := c.Set(key, "generate"); err != nil {
		t.Fatal(err)
	}
	if v := c.Get(key); v.Source != SourceUser || v.Value != "generate" {
		t.Fatalf("user over proxy: %+v", v)
	}
	// A later proxy answer does not override what the user chose.
	_ = c.ApplyProxy(ProxyConfig{UI: map[string]any{"start_tab": "models"}})
	if v := c.Get(key); v.Source != SourceUser {
		t.Fatalf("proxy replaced the user's value: %+v", v)
	}
	c.Reset(key)
	if v := c.Get(key); v.Source != SourceProxy || v.Value != "models" {
		t.Fatalf("after reset: %+v", v)
	}
	_ = c.ApplyProxy(ProxyConfig{})
	if v := c.Get(key); v.Source != SourceDefault {
		t.Fatalf("proxy values not replaced by an empty answer: %+v", v)
	}
}

func TestConfigRefusesBadValues(t *testing.T) {
	c := NewConfig()
	var ce *ConfigError
	if err := c.Set("no_such_key", "x"); !errors.As(err, &ce) || ce.Key != "no_such_key" {
		t.Errorf("unknown key: %v", err)
	}
	if err := c.Set(KeyProxyURL, true); !errors.As(err, &ce) || ce.Key != KeyProxyURL {
		t.Errorf("wrong type: %v", err)
	}
	err := c.ApplyProxy(ProxyConfig{Flags: map[string]any{FlagBatches: "yes", FlagWebhooks: true, "from_the_future": true}})
	if !errors.As(err, &ce) || ce.Key != "flag."+FlagBatches {
		t.Fatalf("proxy flag of the wrong type: %v", err)
	}
	if !c.Bool("flag." + FlagWebhooks) {
		t.Error("a bad value dropped the good ones beside it")
	}
	if v := c.Get("flag.from_the_future"); v.Source != "" {
		t.Errorf("unknown proxy key was kept: %+v", v)
	}
}

func TestConfigSaveAndLoad(t *testing.T) {
	ctx := testCtx(t)
	st := NewMemoryStorage()
	fresh := NewConfig()
	if err := fresh.Load(ctx, st); err != nil {
		t.Fatalf("first start, nothing saved: %v", err)
	}
	c := NewConfig()
	_ = c.Set(KeyProxyURL, "https://proxy.example.com")
	_ = c.Set("flag."+FlagImagePrompt, false)
	if err := c.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Load(ctx, st); err != nil {
		t.Fatal(err)
	}
	if v := fresh.Get(KeyProxyURL); v.Value != "https://proxy.example.com" || v.Source != SourceUser {
		t.Errorf("proxy url after load: %+v", v)
	}
	if fresh.Bool("flag." + FlagImagePrompt) {
		t.Error("flag choice lost across save/load")
	}
	_ = st.Put(ctx, StoreSettings, settingsRecord, map[string]any{KeyProxyToken: 42, KeyProxyURL: "https://b.example"})
	var ce *ConfigError
	if err := fresh.Load(ctx, st); !errors.As(err, &ce) || ce.Key != KeyProxyToken {
		t.Errorf("stale saved value: %v", err)
	}
	if fresh.String(KeyProxyURL) != "https://b.example" {
		t.Error("a bad saved value dropped the good ones")
	}
}

func TestFlags(t *testing.T) {
	c := NewConfig()
	f := NewFlags(c)
	want := map[string]bool{FlagWebhooks: false, FlagLegacyEndpoints: false, FlagImagePrompt: true, FlagBatches: false}
	for _, info := range f.List() {
		if info.Default != want[info.Name] || f.Enabled(info.Name) != info.Default {
			t.Errorf("flag %s default %v enabled %v, want %v", info.Name, info.Default, f.Enabled(info.Name), want[info.Name])
		}
		delete(want, info.Name)
	}
	if len(want) != 0 {
		t.Errorf("flags not listed: %v", want)
	}
	_ = c.ApplyProxy(ProxyConfig{Flags: map[string]any{FlagBatches: true}})
	if !f.Enabled(FlagBatches) {
		t.Error("proxy default not applied")
	}
	if err := c.Set(f.Key(FlagBatches), false); err != nil || f.Enabled(FlagBatches) {
		t.Errorf("user override: %v", err)
	}
	c.Reset(f.Key(FlagBatches))
	if !f.Enabled(FlagBatches) {
		t.Error("reset did not return to the proxy's value")
	}
	if f.Enabled("unknown") {
		t.Error("unknown flag is on")
	}
}
