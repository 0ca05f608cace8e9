package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// writeDetail answers in BFL's error shape, {"detail": "..."}, so the PWA
// shows proxy errors and BFL errors the same way.
func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]string{"detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps of strings and plain structs reach here; a failure is a bug.
		http.Error(w, `{"detail":"internal error encoding a response"}`, http.StatusInternalServerError)
		return
	}
	writeEncoded(w, status, b)
}

// writeEncoded answers JSON that is already encoded.
func writeEncoded(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeDetail(w, http.StatusNotFound, "Not Found: "+r.URL.Path+" is not part of this proxy's API")
	})
}

// allowMethods answers 405 with an Allow header unless the method is listed.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	allow := strings.Join(methods, ", ")
	w.Header().Set("Allow", allow)
	writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed: "+r.URL.Path+" accepts "+allow)
	return false
}
