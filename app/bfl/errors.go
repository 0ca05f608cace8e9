package bfl

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is a non-2xx answer from BFL (or the simulator), decoded.
type Error struct {
	Status int
	// Detail is the server's message when it sent one as text.
	Detail string
	// Issues is the 422 validation list; each names the field at fault.
	Issues []ValidationIssue
}

// Error reads as "HTTP 422: steps: Input should be less than or equal to 50;
// width: ...", naming every field at fault and its rule. It does not say
// "BFL": the proxy in between answers some errors (413, 404) itself.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	switch {
	case len(e.Issues) > 0:
		b.WriteString(": ")
		for i, is := range e.Issues {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(is.String())
		}
	case e.Detail != "":
		b.WriteString(": ")
		b.WriteString(e.Detail)
	default:
		b.WriteString(" without an explanation")
	}
	return b.String()
}

// Field returns the first issue's field, or "" when no field is at fault.
func (e *Error) Field() string {
	for _, is := range e.Issues {
		if f := is.Field(); f != "" {
			return f
		}
	}
	return ""
}

// maxDetail bounds the text kept from a body that is not BFL's JSON (a proxy's
// HTML page, say): enough to recognise it, not a page of markup in a toast.
const maxDetail = 300

// DecodeError decodes an error answer. It understands {"detail": "text"},
// FastAPI's {"detail": [issues]}, other JSON, and bodies that are not JSON at
// all, and never panics: whatever arrives, the user gets something readable.
func DecodeError(status int, body []byte) *Error {
	e := &Error{Status: status}
	trimmed := bytes.TrimSpace(body)
	var envelope map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &envelope); err != nil || envelope == nil {
		e.Detail = plainText(trimmed)
		return e
	}
	for _, key := range []string{"detail", "message", "error"} {
		raw, ok := envelope[key]
		if !ok {
			continue
		}
		var text string
		if json.Unmarshal(raw, &text) == nil {
			e.Detail = text
			return e
		}
		var issues []rawIssue
		if json.Unmarshal(raw, &issues) == nil {
			for _, ri := range issues {
				e.Issues = append(e.Issues, ri.issue())
			}
			return e
		}
		e.Detail = clip(string(raw))
		return e
	}
	e.Detail = clip(string(trimmed))
	return e
}

// rawIssue tolerates issues whose parts are missing or oddly typed.
type rawIssue struct {
	Loc  []any           `json:"loc"`
	Msg  json.RawMessage `json:"msg"`
	Type json.RawMessage `json:"type"`
}

func (r rawIssue) issue() ValidationIssue {
	loc := make([]any, len(r.Loc))
	for i, part := range r.Loc {
		// JSON numbers decode as float64; list indexes read better as ints.
		if f, ok := part.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			part = int(f)
		}
		loc[i] = part
	}
	return ValidationIssue{Loc: loc, Msg: looseString(r.Msg), Type: looseString(r.Type)}
}

func looseString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	return clip(string(raw))
}

// plainText makes a non-JSON body readable: an HTML page is reduced to its
// title, anything else is clipped.
func plainText(body []byte) string {
	s := string(body)
	lower := asciiLower(s)
	if strings.HasPrefix(lower, "<") {
		start := strings.Index(lower, "<title>")
		end := strings.Index(lower, "</title>")
		if start >= 0 && end > start {
			if title := strings.TrimSpace(s[start+len("<title>") : end]); title != "" {
				return "HTML page: " + clip(title)
			}
		}
		return "HTML page instead of JSON"
	}
	return clip(s)
}

// asciiLower lowers A-Z only, so byte offsets found in the result are valid in
// s: strings.ToLower widens each invalid UTF-8 byte to three.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
