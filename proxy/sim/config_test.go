package sim

import (
	"net/http"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

// The proxy nests Config in its own configuration; this is the parse it does.
func TestConfigFromEnvironment(t *testing.T) {
	parse := func(vars map[string]string) (Config, error) {
		var outer struct {
			Sim Config
		}
		err := env.ParseWithOptions(&outer, env.Options{Environment: vars})
		return outer.Sim, err
	}
	cfg, err := parse(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrainDuration.D() != time.Minute || cfg.GenerateDuration.D() != 3*time.Second ||
		cfg.SampleTTL.D() != 10*time.Minute || cfg.MaxActive != 24 || cfg.Credits == nil || *cfg.Credits != 1000 || cfg.Key != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = parse(map[string]string{"SIM_TRAIN_SECONDS": "5", "SIM_GENERATE_SECONDS": "0.5",
		"SIM_SAMPLE_TTL": "2m", "SIM_MAX_ACTIVE": "3", "SIM_KEY": "k", "SIM_CREDITS": "12.5"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrainDuration.D() != 5*time.Second || cfg.GenerateDuration.D() != 500*time.Millisecond ||
		cfg.SampleTTL.D() != 2*time.Minute || cfg.MaxActive != 3 || cfg.Key != "k" || cfg.Credits == nil || *cfg.Credits != 12.5 {
		t.Fatalf("parsed: %+v", cfg)
	}
	for _, bad := range []map[string]string{
		{"SIM_TRAIN_SECONDS": "soon"}, {"SIM_GENERATE_SECONDS": "-1"}, {"SIM_SAMPLE_TTL": "-5m"}, {"SIM_MAX_ACTIVE": "x"},
	} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestConfigDefaultsForZeroValues(t *testing.T) {
	c := Config{APIBase: "http://127.0.0.1:9000/"}.withDefaults()
	if c.MaxActive != 24 || c.Credits == nil || *c.Credits != 1000 || c.SampleTTL.D() != 10*time.Minute || c.Now == nil ||
		c.APIBase != "http://127.0.0.1:9000" || c.DeliveryBase != "https://"+DeliveryHost || c.TrainDuration != 0 {
		t.Fatalf("%+v", c)
	}
}

// SIM_CREDITS=0 starts the account empty, so a client's handling of 402 can
// be tried against the simulator.
func TestZeroStartingCredits(t *testing.T) {
	var outer struct{ Sim Config }
	if err := env.ParseWithOptions(&outer, env.Options{Environment: map[string]string{"SIM_CREDITS": "0"}}); err != nil {
		t.Fatal(err)
	}
	e := newTransportEnv(t, outer.Sim)
	r := e.get("/v1/credits")
	var balance map[string]any
	if r.decode(t, &balance); r.status != http.StatusOK || len(balance) != 1 || balance["credits"] != 0.0 {
		t.Fatalf("credits: %d %s, want {\"credits\":0}", r.status, r.body)
	}
	r = e.post("/v1/finetune", map[string]any{"file_data": datasetZIP(t, 1, false), "finetune_comment": "x", "mode": "style"})
	if r.status != http.StatusPaymentRequired {
		t.Fatalf("submit with no credits: %d %s", r.status, r.body)
	}
}
