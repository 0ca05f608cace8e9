package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The simulated hosts. They end in .test, a name reserved so it can never
// resolve on a real network: a request that escapes the in-process
// Transport fails instead of reaching someone else's server.
const (
	APIHost      = "api.sim.bfl.test"
	DeliveryHost = "delivery.sim.bfl.test"
)

// Config tunes the simulator. The env tags let the proxy nest it in its own
// configuration and read both with one caarlos0/env parse.
//
// Zero values are usable: New fills MaxActive, a nil Credits, SampleTTL and
// the two bases with their defaults, while zero durations mean tasks finish
// at once, which is what quick tests want.
type Config struct {
	// Key is the x-key every /v1/ request must carry; "" accepts any request
	// (the proxy's in-process use, where the proxy itself is the gate).
	Key string `env:"SIM_KEY"`
	// The three durations accept plain seconds ("60", "0.5") or Go durations
	// ("60s", "1m30s"): the variables are named _SECONDS but people write both.
	TrainDuration    Duration `env:"SIM_TRAIN_SECONDS" envDefault:"60s"`
	GenerateDuration Duration `env:"SIM_GENERATE_SECONDS" envDefault:"3s"`
	SampleTTL        Duration `env:"SIM_SAMPLE_TTL" envDefault:"10m"`
	// MaxActive is how many tasks may be Pending at once; past it a submit
	// answers 429, as BFL does past 24 in-flight tasks per account.
	MaxActive int `env:"SIM_MAX_ACTIVE" envDefault:"24"`
	// Credits is the starting balance, spent by the price table in prices.go.
	// It is a pointer because 0 is a balance worth asking for (to see how a
	// client handles 402) and so cannot also mean "unset": nil is unset and
	// New makes it 1000, so a zero Config still has credits to spend. From
	// the environment it is never nil: unset, envDefault gives 1000.
	Credits *float64 `env:"SIM_CREDITS" envDefault:"1000"`
	// APIBase and DeliveryBase are the URLs the simulator writes into
	// polling_url and sample. They default to https://APIHost and
	// https://DeliveryHost; a standalone server sets both to its own URL.
	APIBase, DeliveryBase string
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
}

// Duration is a time.Duration read from text as either a Go duration or a
// plain number of seconds. It satisfies encoding.TextUnmarshaler, which
// caarlos0/env consults before its own parsers, so no FuncMap is needed.
type Duration time.Duration

// UnmarshalText accepts "60", "2.5", "60s" or "1m"; negative values are refused.
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	v, err := time.ParseDuration(s)
	if err != nil {
		secs, numErr := strconv.ParseFloat(s, 64)
		if numErr != nil {
			return fmt.Errorf("duration %q: want seconds (\"60\") or a Go duration (\"60s\", \"1m\")", s)
		}
		v = time.Duration(secs * float64(time.Second))
	}
	if v < 0 {
		return fmt.Errorf("duration %q: must not be negative", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String prints the duration the way time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

const (
	defaultMaxActive = 24
	defaultCredits   = 1000
	defaultSampleTTL = 10 * time.Minute
)

// Check refuses values read from the environment that the simulator would
// otherwise take for unset: there SIM_MAX_ACTIVE and SIM_CREDITS always
// have a value, so 0 active tasks or a negative balance is a typo. Each
// error starts with the variable's name.
func (c Config) Check() error {
	if c.MaxActive < 1 {
		return fmt.Errorf("SIM_MAX_ACTIVE: %d must be at least 1", c.MaxActive)
	}
	if c.Credits != nil && *c.Credits < 0 {
		return fmt.Errorf("SIM_CREDITS: %g must not be negative", *c.Credits)
	}
	return nil
}

// withDefaults fills the zero values New documents.
func (c Config) withDefaults() Config {
	if c.MaxActive <= 0 {
		c.MaxActive = defaultMaxActive
	}
	if c.Credits == nil {
		c.Credits = new(float64(defaultCredits))
	}
	if c.SampleTTL <= 0 {
		c.SampleTTL = Duration(defaultSampleTTL)
	}
	if c.TrainDuration < 0 {
		c.TrainDuration = 0
	}
	if c.GenerateDuration < 0 {
		c.GenerateDuration = 0
	}
	if c.APIBase == "" {
		c.APIBase = "https://" + APIHost
	}
	if c.DeliveryBase == "" {
		c.DeliveryBase = "https://" + DeliveryHost
	}
	c.APIBase = strings.TrimSuffix(c.APIBase, "/")
	c.DeliveryBase = strings.TrimSuffix(c.DeliveryBase, "/")
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
