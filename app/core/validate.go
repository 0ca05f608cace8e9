package core

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// ValidateRequest checks a request body (or, for GET endpoints, its query)
// against the catalog before anything is sent: one message per field, or nil
// when the request is valid. Fields the endpoint does not have are reported
// too, since BFL would silently ignore them.
func ValidateRequest(endpoint string, body map[string]any) *ValidationError {
	e, ok := bfl.Lookup(endpoint)
	if !ok {
		return &ValidationError{Fields: map[string]string{"endpoint": fmt.Sprintf("%q is not a BFL endpoint this app knows", endpoint)}}
	}
	var issues []bfl.ValidationIssue
	if e.Method == http.MethodGet {
		q := url.Values{}
		for k, v := range body {
			q.Set(k, fmt.Sprint(v))
		}
		issues = e.ValidateQuery(q)
	} else {
		data, err := json.Marshal(body)
		if err != nil {
			return &ValidationError{Fields: map[string]string{"body": "cannot be encoded as JSON: " + err.Error()}}
		}
		issues = e.Validate(data)
	}
	fields := map[string]string{}
	for _, is := range issues {
		name := is.Field()
		if name == "" {
			name = "body"
		}
		if _, seen := fields[name]; !seen {
			fields[name] = is.Msg
		}
	}
	for _, name := range e.UnknownFields(body) {
		fields[name] = fmt.Sprintf("is not a field of %s", endpoint)
	}
	if len(fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: fields}
}
