package core

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// ErrNotFound is wrapped by a *StorageError when a key has no record.
var ErrNotFound = errors.New("not found")

// ConfigError reports a configuration value that cannot be used.
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config %q: %v", e.Key, e.Err) }
func (e *ConfigError) Unwrap() error { return e.Err }

// APIError is any failure of a call to the proxy. Message is one sentence the
// user can act on; the UI shows it as is.
type APIError struct {
	Endpoint   string
	Status     int // 0 when no HTTP answer arrived
	Message    string
	Field      string // the form field a 422 names, "" otherwise
	RetryAfter time.Duration
	// NotSent is the proxy's word that the request never reached BFL (it
	// could not connect, or the upload stalled): a submit is safe to resend.
	NotSent bool
	// RequestID is the proxy's id for the request (X-Request-Id), which its
	// log lines carry; "" when no answer came.
	RequestID string
	Detail    *bfl.Error // the decoded error body, nil without one
	Err       error
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %s", e.Endpoint, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Endpoint, e.Status, e.Message)
}

func (e *APIError) Unwrap() error { return e.Err }

// UserMessage is the sentence for the user about err: the API client's own
// when it wrote one.
func UserMessage(err error) string {
	var ae *APIError
	if errors.As(err, &ae) && ae.Message != "" {
		return ae.Message
	}
	return err.Error()
}

// StorageError is a failed storage operation. A missing record wraps ErrNotFound.
type StorageError struct {
	Op, Store, Key string
	Err            error
}

func (e *StorageError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("storage %s %s: %v", e.Op, e.Store, e.Err)
	}
	return fmt.Sprintf("storage %s %s/%s: %v", e.Op, e.Store, e.Key, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// ValidationError holds one message per invalid field, keyed by field name.
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	return "invalid request: " + e.Join(": ", "; ")
}

// Join lists "field<sep>message" for every field, in name order, joined by between.
func (e *ValidationError) Join(sep, between string) string {
	parts := make([]string, 0, len(e.Fields))
	for _, name := range slices.Sorted(maps.Keys(e.Fields)) {
		parts = append(parts, name+sep+e.Fields[name])
	}
	return strings.Join(parts, between)
}
