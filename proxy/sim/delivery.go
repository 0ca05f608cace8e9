package sim

import (
	"net/http"
	"strconv"
	"strings"
)

// notFoundXML is the delivery host's answer for an unknown or expired file:
// BFL's storage answers in XML, and clients must not expect JSON there.
const notFoundXML = `<?xml version="1.0" encoding="utf-8"?>` +
	`<Error><Code>SampleNotFound</Code><Message>This sample does not exist or its link has expired.</Message></Error>`

// serveDelivery serves samples, drawing them from their recipe when they are
// not in the render cache. Like BFL's delivery hosts it sends no CORS
// headers and needs no key: the unguessable name is the credential.
func (s *Sim) serveDelivery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/delivery/")
	now := s.cfg.Now()
	s.mu.Lock()
	t, ok := s.samples[name]
	s.mu.Unlock()
	// The task's image spec and finishing time never change once it is
	// admitted, so they are read here without the lock.
	if !ok || !now.Before(t.sampleExpires(s.cfg.SampleTTL.D())) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(notFoundXML))
		return
	}
	data, err := s.rendered.get(r.Context(), t.image)
	if r.Context().Err() != nil {
		return // the client has gone: there is no one to answer
	}
	if err != nil {
		http.Error(w, "could not render the sample", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/"+t.image.format)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	// Cached no longer than the link lives, so a cache cannot serve a
	// sample after the simulator would answer 404.
	left := int(t.sampleExpires(s.cfg.SampleTTL.D()).Sub(now).Seconds())
	w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(max(left, 0)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(data)
	}
}
