package proxy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/fluxforge/fluxforge/proxy/allow"
)

const maxRedirects = 5

// errRedirect marks a redirect the proxy refused to follow.
var errRedirect = errors.New("redirect refused")

// fetchClient follows redirects only to hosts on the same list, never
// carries the key across one, and never uses cookies.
func fetchClient(t http.RoundTripper, list *allow.List, listName string) *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			req.Header.Del("x-key")
			if len(via) >= maxRedirects {
				return fmt.Errorf("%w: more than %d redirects", errRedirect, maxRedirects)
			}
			if err := list.Check(req.URL); err != nil {
				return fmt.Errorf("%w to %s: %w (%s)", errRedirect, req.URL.Host, err, listName)
			}
			return nil
		},
	}
}

// fetch checks the url query parameter of /api/poll and /api/image against
// list and GETs it with exactly the headers given. On failure it has
// answered the client and ok is false.
func (s *server) fetch(w http.ResponseWriter, r *http.Request, list *allow.List, c *http.Client, listName string, hdr http.Header) (resp *http.Response, u *url.URL, ok bool) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return nil, nil, false
	}
	raw := r.URL.Query().Get("url")
	if raw == "" {
		writeDetail(w, http.StatusBadRequest, "url: the query parameter is required")
		return nil, nil, false
	}
	u, err := url.Parse(raw)
	if err != nil {
		writeDetail(w, http.StatusBadRequest, "url: not a valid URL")
		return nil, nil, false
	}
	if err := list.Check(u); err != nil {
		writeDetail(w, http.StatusForbidden, fmt.Sprintf("url refused by %s: %v", listName, err))
		return nil, nil, false
	}
	noteTarget(w, u.Host)
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "", nil)
	if err != nil {
		writeDetail(w, http.StatusInternalServerError, "building the request failed")
		return nil, nil, false
	}
	// The very URL that was checked is the one fetched: no second parse.
	req.URL, req.Host, req.Header = u, u.Host, hdr
	resp, err = c.Do(req)
	if err != nil {
		s.fetchError(w, r, u, err)
		return nil, nil, false
	}
	return resp, u, true
}

// handlePoll fetches a polling_url with the key, from allowed API hosts only.
func (s *server) handlePoll() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := http.Header{"Accept": {"application/json"}}
		if s.cfg.APIKey != "" {
			hdr.Set("x-key", s.cfg.APIKey)
		}
		resp, _, ok := s.fetch(w, r, s.poll, s.pollC, "POLL_HOSTS", hdr)
		if !ok {
			return
		}
		defer resp.Body.Close()
		_ = s.cleanResponse(resp)
		h := w.Header()
		copyHeaders(h, resp.Header, "Content-Type", "Content-Length", "Retry-After")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(resp.StatusCode)
		if _, err := io.Copy(w, resp.Body); err != nil {
			// Headers are gone: cutting the connection is the only way to
			// tell the client the answer is incomplete.
			panic(http.ErrAbortHandler)
		}
	})
}

// handleImage fetches a result image without the key or any client header,
// and streams it back if it is a raster image under MAX_IMAGE_MB.
func (s *server) handleImage() http.Handler {
	maxImage := s.cfg.MaxImageMB << 20
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, u, ok := s.fetch(w, r, s.delivery, s.deliveryC, "DELIVERY_HOSTS", http.Header{"Accept": {"image/*"}})
		if !ok {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			status := http.StatusBadGateway
			hint := ""
			switch resp.StatusCode {
			case http.StatusNotFound, http.StatusForbidden:
				status = http.StatusNotFound
				hint = ": the link has probably expired (BFL keeps results about 10 minutes)"
			case http.StatusTooManyRequests:
				// Fetching an image again is safe; the client may retry.
				status = http.StatusTooManyRequests
				hint = ": retry later"
				copyHeaders(w.Header(), resp.Header, "Retry-After")
			}
			writeDetail(w, status, fmt.Sprintf("the delivery host %s answered %s%s", u.Host, resp.Status, hint))
			return
		}
		ct := resp.Header.Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !strings.HasPrefix(mt, "image/") || mt == "image/svg+xml" {
			writeDetail(w, http.StatusBadGateway, fmt.Sprintf("the delivery host %s sent %q, not a raster image", u.Host, ct))
			return
		}
		if resp.ContentLength > maxImage {
			writeDetail(w, http.StatusBadGateway, fmt.Sprintf("the image is %.1f MB, over MAX_IMAGE_MB=%d", float64(resp.ContentLength)/(1<<20), s.cfg.MaxImageMB))
			return
		}
		h := w.Header()
		copyHeaders(h, resp.Header, "Content-Length")
		h.Set("Content-Type", mt)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		// Opened directly, the image runs nothing in this origin.
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		w.WriteHeader(http.StatusOK)
		n, err := io.Copy(w, io.LimitReader(resp.Body, maxImage+1))
		if n > maxImage || err != nil {
			// Headers are gone: cutting the connection is the only way to
			// tell the client the image is incomplete.
			panic(http.ErrAbortHandler)
		}
	})
}

// fetchError answers a failed poll or image fetch: a refused redirect is
// 502 naming the rule, a timeout 504, anything else 502.
func (s *server) fetchError(w http.ResponseWriter, r *http.Request, u *url.URL, err error) {
	switch {
	case errors.Is(err, errRedirect):
		writeDetail(w, http.StatusBadGateway, fmt.Sprintf("%s redirected elsewhere: %v", u.Host, withoutURL(err)))
	case r.Context().Err() != nil:
		w.WriteHeader(499)
	case errors.As(err, new(*connectError)):
		if !isTimeout(err) {
			s.log.Warn("fetch failed", "id", requestID(w), "host", u.Host, "error", withoutURL(err).Error())
		}
		status, detail := s.connectFailure(u.Host, err)
		writeDetail(w, status, detail)
	case isTimeout(err):
		writeDetail(w, http.StatusGatewayTimeout, fmt.Sprintf("%s did not answer within UPSTREAM_TIMEOUT=%s", u.Host, s.cfg.UpstreamTimeout))
	default:
		s.log.Warn("fetch failed", "id", requestID(w), "host", u.Host, "error", withoutURL(err).Error())
		writeDetail(w, http.StatusBadGateway, fmt.Sprintf("the connection to %s failed", u.Host))
	}
}

// withoutURL is the error net/http's client wraps in a *url.Error, whose
// message repeats the whole URL: a signed image link would put its
// signature in the log.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

func copyHeaders(dst, src http.Header, keys ...string) {
	for _, k := range keys {
		if v := src.Get(k); v != "" {
			dst.Set(k, v)
		}
	}
}
