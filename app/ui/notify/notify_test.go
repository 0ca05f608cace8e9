package notify

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fluxforge/fluxforge/app/core"
)

func TestMessage(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("submit: %w", &core.APIError{Status: 402, Message: "Out of credits: top up."}), "Out of credits: top up."},
		{&core.ValidationError{Fields: map[string]string{"steps": "must be at most 50", "prompt": "is required"}},
			"Check the form: prompt is required; steps must be at most 50."},
		{&core.StorageError{Op: "put", Store: "jobs", Err: errors.New("QuotaExceededError")},
			"Your browser could not save or read your work (QuotaExceededError)."},
		{&core.ConfigError{Key: "proxy_url", Err: errors.New("must be a string")}, "The setting proxy_url is not valid: must be a string."},
		{errors.New("plain"), "plain"},
	}
	for _, c := range cases {
		if got := Message(c.err); got != c.want {
			t.Errorf("Message(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
