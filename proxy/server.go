package proxy

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/rs/cors"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/proxy/allow"
	"github.com/fluxforge/fluxforge/proxy/sim"
)

// server holds everything the handlers share. It is built once by Run.
type server struct {
	cfg  Config
	log  *slog.Logger
	site *site

	// endpoints holds what every request needs of each catalog endpoint,
	// by name: built once rather than walking the catalog per request.
	endpoints    map[string]endpoint
	upstream     *url.URL
	upstreamHost string
	api          *httputil.ReverseProxy
	bufs         *bufferPool
	// fast, in live mode, carries catalog GETs without ReverseProxy.
	fast *fastPath
	// transports are live mode's net/http transports, whose idle
	// connections close with the server.
	transports []*http.Transport

	poll, delivery   *allow.List
	pollC, deliveryC *http.Client

	inflight   chan struct{}
	corsPolicy *cors.Cors
	health     []byte
	clientConf []byte

	sim *sim.Sim
}

func newServer(cfg Config, logger *slog.Logger) (*server, error) {
	s := &server{
		cfg:        cfg,
		log:        logger,
		site:       newSite(cfg.SiteDir),
		endpoints:  map[string]endpoint{},
		bufs:       newBufferPool(),
		inflight:   make(chan struct{}, cfg.MaxConcurrent),
		corsPolicy: newCORS(cfg.Origins),
	}
	built := false
	defer func() {
		if !built {
			s.close()
		}
	}()

	var apiTransport, fetchTransport http.RoundTripper
	if cfg.Simulated() {
		s.sim = sim.New(cfg.Sim)
		t := s.sim.Transport()
		apiTransport, fetchTransport = t, t
		s.upstream = &url.URL{Scheme: "https", Host: sim.APIHost}
		var err error
		if s.poll, err = allow.New([]string{sim.APIHost}, nil); err != nil {
			return nil, fmt.Errorf("simulated polling allowlist: %w", err)
		}
		if s.delivery, err = allow.New([]string{sim.DeliveryHost}, nil); err != nil {
			return nil, fmt.Errorf("simulated delivery allowlist: %w", err)
		}
	} else {
		s.upstream = cfg.upstream
		s.fast = newFastPath(cfg.upstream, cfg.APIKey, cfg.UpstreamTimeout, cfg.ConnectTimeout, cfg.MaxHeaderKB<<10)
		api, fetch := newTransport(cfg, nil), newTransport(cfg, dialGuard(cfg.upstream))
		s.transports = []*http.Transport{api, fetch}
		apiTransport, fetchTransport = connectTracked{api}, connectTracked{fetch}
		origin := []string{cfg.upstreamOrigin()}
		var err error
		if s.poll, err = allow.New(cfg.PollHosts, origin); err != nil {
			return nil, configError("POLL_HOSTS", "%v", err)
		}
		if s.delivery, err = allow.New(cfg.DeliveryHosts, origin); err != nil {
			return nil, configError("DELIVERY_HOSTS", "%v", err)
		}
	}
	s.upstreamHost = s.upstream.Host
	for _, e := range bfl.Catalog() {
		s.endpoints[e.Name] = endpoint{
			method: e.Method,
			path:   (&url.URL{Path: s.upstream.Path + "/v1/" + e.Name}).EscapedPath(),
		}
	}
	s.api = s.newAPIProxy(apiTransport)
	s.pollC = fetchClient(fetchTransport, s.poll, "POLL_HOSTS")
	s.deliveryC = fetchClient(fetchTransport, s.delivery, "DELIVERY_HOSTS")

	mode := "live"
	if cfg.Simulated() {
		mode = "simulated"
	}
	var err error
	s.health, err = json.Marshal(map[string]string{"mode": mode, "upstream": s.upstreamHost, "version": version()})
	if err != nil {
		return nil, fmt.Errorf("encoding /healthz: %w", err)
	}
	s.clientConf, err = json.Marshal(struct {
		Mode     string         `json:"mode"`
		Upstream string         `json:"upstream"`
		Flags    map[string]any `json:"flags"`
		UI       map[string]any `json:"ui"`
	}{mode, s.upstreamHost, cfg.client.Flags, cfg.client.UI})
	if err != nil {
		return nil, fmt.Errorf("%w: CONFIG_FILE: cannot be served as JSON: %w", ErrConfig, err)
	}
	built = true
	return s, nil
}

// endpoint is a catalog endpoint as the proxy forwards it.
type endpoint struct {
	method string
	path   string // escaped, on the upstream
}

// close releases what the server holds once it has stopped serving: the
// simulator, and idle connections upstream, which would otherwise stay open
// until the process exits.
func (s *server) close() {
	if s.fast != nil {
		s.fast.close()
	}
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
	if s.sim != nil {
		s.sim.Close()
	}
}

func (s *server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeEncoded(w, http.StatusOK, s.health)
	})
}

func (s *server) handleConfig() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeEncoded(w, http.StatusOK, s.clientConf)
	})
}
