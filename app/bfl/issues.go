package bfl

import "encoding/json"

// ValidationIssue is one entry of a FastAPI 422 "detail" list.
type ValidationIssue struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// Field returns the field the issue is about: the first name in Loc after
// the "body"/"query" location prefix, or "" for whole-body issues.
func (v ValidationIssue) Field() string {
	for i, part := range v.Loc {
		s, ok := part.(string)
		if !ok {
			continue
		}
		if i == 0 && isLocPrefix(s) {
			continue
		}
		return s
	}
	return ""
}

func isLocPrefix(s string) bool {
	switch s {
	case "body", "query", "path", "header", "cookie":
		return true
	}
	return false
}

// String reads as "field: message", or just the message for whole-body issues.
func (v ValidationIssue) String() string {
	if f := v.Field(); f != "" {
		return f + ": " + v.Msg
	}
	return v.Msg
}

// ValidationBody renders issues as FastAPI's 422 answer: {"detail":[...]}.
func ValidationBody(issues []ValidationIssue) []byte {
	if issues == nil {
		issues = []ValidationIssue{}
	}
	b, err := json.Marshal(struct {
		Detail []ValidationIssue `json:"detail"`
	}{issues})
	if err != nil {
		// Only a caller-built Loc holding a non-JSON value gets here; a
		// string detail still tells the client what went wrong.
		fallback, _ := json.Marshal(map[string]string{"detail": "unencodable validation issues: " + err.Error()})
		return fallback
	}
	return b
}
