package bfl

import (
	"errors"
	"math"
	"testing"
)

func TestNormalizeProgress(t *testing.T) {
	if NormalizeProgress(nil) != nil {
		t.Error("nil progress should stay nil")
	}
	nan := math.NaN()
	if NormalizeProgress(&nan) != nil {
		t.Error("NaN progress should read as no progress")
	}
	cases := []struct{ in, want float64 }{
		{0, 0}, {0.25, 25}, {0.5, 50}, {1, 100}, {1.5, 1.5}, {42, 42}, {100, 100},
		{130, 100}, {-0.2, 0}, {-5, 0}, {math.Inf(1), 100},
	}
	for _, c := range cases {
		in := c.in
		got := NormalizeProgress(&in)
		if got == nil || math.Abs(*got-c.want) > 1e-9 {
			t.Errorf("NormalizeProgress(%v) = %v, want %v", c.in, got, c.want)
		}
		if in != c.in {
			t.Errorf("NormalizeProgress modified its input: %v", in)
		}
	}
}

func TestParseAspectRatio(t *testing.T) {
	cases := []struct {
		in   string
		w, h int
		ok   bool
	}{
		{"16:9", 16, 9, true}, {"1:1", 1, 1, true}, {"21:9", 21, 9, true}, {"9:21", 9, 21, true},
		{"7:3", 7, 3, true}, {"3:7", 3, 7, true}, {"2100:900", 2100, 900, true},
		{"22:9", 0, 0, false}, {"9:22", 0, 0, false}, {"3:1", 0, 0, false}, {"1:3", 0, 0, false},
		{"16x9", 0, 0, false}, {"16:", 0, 0, false}, {":9", 0, 0, false}, {"", 0, 0, false},
		{"0:9", 0, 0, false}, {"16:0", 0, 0, false}, {"-16:9", 0, 0, false}, {"+16:9", 0, 0, false},
		{" 16:9", 0, 0, false}, {"16:9:1", 0, 0, false}, {"1.5:1", 0, 0, false},
		{"99999999999:99999999999", 0, 0, false}, {"4294967295:4294967295", 4294967295, 4294967295, true},
	}
	for _, c := range cases {
		w, h, err := ParseAspectRatio(c.in)
		if c.ok {
			if err != nil || w != c.w || h != c.h {
				t.Errorf("ParseAspectRatio(%q) = %d, %d, %v; want %d, %d", c.in, w, h, err, c.w, c.h)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrAspectRatio) {
			t.Errorf("ParseAspectRatio(%q) = %d, %d, %v; want an ErrAspectRatio", c.in, w, h, err)
		}
	}
}

func TestEffectiveLearningRate(t *testing.T) {
	cases := map[string]float64{"lora": 1e-4, "full": 1e-5, "": 1e-5}
	for typ, want := range cases {
		if got := EffectiveLearningRate(typ); got != want {
			t.Errorf("EffectiveLearningRate(%q) = %g, want %g", typ, got, want)
		}
	}
	// Both effective rates must be values the API itself would accept.
	lr, _ := mustLookup(t, "finetune").Field("learning_rate")
	for _, typ := range []string{"lora", "full"} {
		if v := EffectiveLearningRate(typ); v < *lr.Min || v > *lr.Max {
			t.Errorf("effective rate %g for %s is outside [%g, %g]", v, typ, *lr.Min, *lr.Max)
		}
	}
}

func TestTaskID(t *testing.T) {
	cases := []struct {
		in   AsyncResponse
		want string
	}{
		{AsyncResponse{ID: "task-1"}, "task-1"},
		{AsyncResponse{ID: "task-1", FinetuneID: "ft-9"}, "ft-9"},
		{AsyncResponse{FinetuneID: "ft-9"}, "ft-9"},
		{AsyncResponse{}, ""},
	}
	for _, c := range cases {
		if got := c.in.TaskID(); got != c.want {
			t.Errorf("%+v.TaskID() = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStatuses(t *testing.T) {
	cases := []struct {
		s               Status
		known, terminal bool
	}{
		{StatusTaskNotFound, true, true},
		{StatusPending, true, false},
		{StatusRequestModerated, true, true},
		{StatusContentModerated, true, true},
		{StatusReady, true, true},
		{StatusError, true, true},
		{"Failed", false, false},
		{"ready", false, false},
		{"", false, false},
	}
	for _, c := range cases {
		if c.s.Known() != c.known || c.s.Terminal() != c.terminal {
			t.Errorf("%q: Known %v Terminal %v, want %v %v", c.s, c.s.Known(), c.s.Terminal(), c.known, c.terminal)
		}
	}
	if len(Statuses) != 6 {
		t.Errorf("%d statuses, BFL documents 6", len(Statuses))
	}
}
