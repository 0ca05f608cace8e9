package proxy

import "net/http"

// routes is the proxy's whole surface. Everything under /api/ goes through
// CORS, the origin guard, the token check and the in-flight limit; /healthz
// only through CORS; anything else is the PWA.
func (s *server) routes() http.Handler {
	api := func(h http.Handler) http.Handler { return s.cors(s.guardOrigin(s.requireToken(s.limit(h)))) }

	mux := http.NewServeMux()
	mux.Handle("/healthz", s.cors(s.handleHealth()))
	mux.Handle("/api/config", api(s.handleConfig()))
	mux.Handle("/api/v1/{name}", api(s.handleAPI()))
	mux.Handle("/api/poll", api(s.handlePoll()))
	mux.Handle("/api/image", api(s.handleImage()))
	mux.Handle("/api/", api(notFound()))
	mux.Handle("/", s.site)
	return s.logRequests(mux)
}
