package core

// Feature flag names. A flag hides a whole feature; it never leaves half of one reachable.
const (
	FlagWebhooks        = "webhooks"
	FlagLegacyEndpoints = "legacy_endpoints"
	FlagImagePrompt     = "image_prompt_support"
	FlagBatches         = "batches"
)

// FlagInfo describes a feature flag for the settings page.
type FlagInfo struct {
	Name    string
	Label   string
	Hint    string
	Default bool
}

func flagInfos() []FlagInfo {
	return []FlagInfo{
		{Name: FlagWebhooks, Label: "Webhooks", Default: false,
			Hint: "Show webhook fields, for studios whose own server wants to hear when a task ends."},
		{Name: FlagLegacyEndpoints, Label: "Legacy endpoints", Default: false,
			Hint: "Offer endpoints BFL no longer lists (depth and canny finetuned); they may stop working."},
		{Name: FlagImagePrompt, Label: "Image prompts", Default: true,
			Hint: "Let a generation start from an image as well as text."},
		{Name: FlagBatches, Label: "Batches", Default: false,
			Hint: "Generate several seeds, or a strength by seed grid, in one go."},
	}
}

// Flags answers which features are on, from the configuration's flag settings.
type Flags struct {
	cfg *Config
}

// NewFlags reads flags from cfg.
func NewFlags(cfg *Config) *Flags { return &Flags{cfg: cfg} }

// Enabled reports whether the named feature is on; unknown names are off.
func (f *Flags) Enabled(name string) bool { return f.cfg.Bool(flagPrefix + name) }

// List describes every flag.
func (f *Flags) List() []FlagInfo { return flagInfos() }

// Key is the configuration key holding the named flag.
func (f *Flags) Key(name string) string { return flagPrefix + name }
