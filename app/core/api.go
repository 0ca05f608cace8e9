package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// Defaults for APIOptions fields left zero.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultUploadTimeout = 15 * time.Minute
	DefaultRetries       = 4
	DefaultBackoff       = 500 * time.Millisecond
	// maxBackoff caps the exponential delay, and maxRetryAfter a server's
	// Retry-After, so a hostile or confused answer cannot park a poll for hours.
	maxBackoff    = 20 * time.Second
	maxRetryAfter = 2 * time.Minute
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 1 << 20
	// maxImage bounds an image fetched through the proxy.
	maxImage = 128 << 20
)

// APIOptions configures an API client.
type APIOptions struct {
	BaseURL       string // the proxy's origin; "" = the page's own origin
	Token         string // the proxy's access token (PROXY_TOKEN), if it has one
	Timeout       time.Duration
	UploadTimeout time.Duration // for PostJSON, whose bodies are tens of MB
	Retries       int           // extra attempts for GET-like calls
	Backoff       time.Duration // first retry delay; doubles per attempt, with jitter
	HTTP          *http.Client
	Sleep         func(context.Context, time.Duration) error
}

// Health is what the proxy's /healthz reports.
type Health struct {
	Mode     string `json:"mode"` // "live" or "simulated"
	Upstream string `json:"upstream"`
	Version  string `json:"version"`
}

// Simulated reports whether the proxy answers with its built-in simulator.
func (h Health) Simulated() bool { return h.Mode == "simulated" }

// ProxyConfig is what the proxy's /api/config reports: its mode, the BFL host
// it uses and the defaults it sets for flags and the UI. It never holds a secret.
type ProxyConfig struct {
	Mode     string         `json:"mode"`
	Upstream string         `json:"upstream"`
	Flags    map[string]any `json:"flags"`
	UI       map[string]any `json:"ui"`
}

// API talks to the proxy, never to BFL directly: the key stays on the proxy.
type API struct {
	opts APIOptions

	mu      sync.RWMutex
	baseURL string
	token   string
}

// NewAPI returns a client; zero option fields take the package defaults.
func NewAPI(o APIOptions) *API {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = DefaultUploadTimeout
	}
	if o.Retries <= 0 {
		o.Retries = DefaultRetries
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	if o.Sleep == nil {
		o.Sleep = Sleep
	}
	return &API{opts: o, baseURL: o.BaseURL, token: o.Token}
}

// SetTarget points the client at another proxy, as the settings page does.
func (a *API) SetTarget(baseURL, token string) {
	a.mu.Lock()
	a.baseURL, a.token = baseURL, token
	a.mu.Unlock()
}

func (a *API) target() (string, string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	base := a.baseURL
	if base == "" {
		base = pageOrigin()
	}
	return strings.TrimRight(base, "/"), a.token
}

// Get calls a catalog GET endpoint and decodes its JSON answer into out.
// 429, 5xx and network failures are retried with backoff.
func (a *API) Get(ctx context.Context, endpoint string, query url.Values, out any) error {
	if err := checkEndpoint(endpoint, http.MethodGet); err != nil {
		return err
	}
	return a.getJSON(ctx, endpoint, "/api/v1/"+endpoint, query, out)
}

// Post submits a JSON body to a catalog POST endpoint. It is never retried:
// BFL may already have accepted, and charged for, a submit that failed late.
func (a *API) Post(ctx context.Context, endpoint string, body any, out any) error {
	if err := checkEndpoint(endpoint, http.MethodPost); err != nil {
		return err
	}
	data, err := json.Marshal(body)
	if err != nil {
		return &APIError{Endpoint: endpoint, Message: "The request could not be encoded.", Err: fmt.Errorf("encode body: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, a.postTimeout(len(data)))
	defer cancel()
	return unsureSubmit(a.send(ctx, endpoint, http.MethodPost, "/api/v1/"+endpoint, nil, bytes.NewReader(data), int64(len(data)), out))
}

// slowUplink is the upload rate a submit's timeout allows for, about half a
// megabit: a fill's image and mask or an image prompt make bodies of
// megabytes, and a submit cut off by the timeout may still have reached BFL.
const slowUplink = 64 << 10 // bytes per second

// postTimeout is Timeout plus the time to send size bytes at slowUplink,
// within UploadTimeout.
func (a *API) postTimeout(size int) time.Duration {
	return min(a.opts.Timeout+time.Duration(size)*time.Second/slowUplink, max(a.opts.UploadTimeout, a.opts.Timeout))
}

// PostJSON submits a pre-built JSON body, reporting upload progress. It is
// never retried.
func (a *API) PostJSON(ctx context.Context, endpoint string, body []byte, progress func(sent, total int64), out any) error {
	if err := checkEndpoint(endpoint, http.MethodPost); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.UploadTimeout)
	defer cancel()
	return unsureSubmit(a.upload(ctx, endpoint, body, progress, out))
}

// unsureSubmit rewords the failures after which BFL may hold, and charge
// for, a submit: no answer or a cut-off one, a gateway that lost BFL's
// answer (502, 504), an unreadable success. "Try again" there could pay for
// the same work twice. A connection that was never made sent nothing, and
// neither did a request the proxy says it could not send, so those keep
// their message.
func unsureSubmit(err error) error {
	var ae *APIError
	var op *net.OpError
	if !errors.As(err, &ae) || ae.NotSent || (errors.As(ae.Err, &op) && op.Op == "dial") {
		return err
	}
	if (ae.Status == 0 && errors.Is(ae.Err, errNetwork)) || ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout || ae.Status/100 == 2 {
		ae.Message = withReference("The submit may have reached BFL, but no complete answer came back: check your credits and tasks before sending it again.", ae.RequestID)
	}
	return err
}

// Poll fetches a task's state from the polling URL BFL returned, through the proxy.
func (a *API) Poll(ctx context.Context, pollingURL string) (bfl.ResultResponse, error) {
	var r bfl.ResultResponse
	err := a.getJSON(ctx, "poll", "/api/poll", url.Values{"url": {pollingURL}}, &r)
	return r, err
}

// Image fetches a result image through the proxy, which holds no key for it.
func (a *API) Image(ctx context.Context, sampleURL string) ([]byte, string, error) {
	var data []byte
	var ctype string
	err := a.retry(ctx, func(ctx context.Context) error {
		res, err := a.do(ctx, "image", http.MethodGet, "/api/image", url.Values{"url": {sampleURL}}, nil, 0)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		data, err = io.ReadAll(io.LimitReader(res.Body, maxImage+1))
		if err != nil {
			return brokenOff("image", fmt.Errorf("read image: %w", err))
		}
		if len(data) > maxImage {
			return &APIError{Endpoint: "image", Status: res.StatusCode, Message: "The image is larger than this app accepts."}
		}
		ctype = res.Header.Get("Content-Type")
		return nil
	})
	return data, ctype, err
}

// Health asks the proxy which mode it runs in.
func (a *API) Health(ctx context.Context) (Health, error) {
	var h Health
	err := a.getJSON(ctx, "healthz", "/healthz", nil, &h)
	return h, err
}

// ProxyConfig fetches the defaults the proxy publishes for flags and the UI.
func (a *API) ProxyConfig(ctx context.Context) (ProxyConfig, error) {
	var c ProxyConfig
	err := a.getJSON(ctx, "config", "/api/config", nil, &c)
	return c, err
}

func checkEndpoint(name, method string) error {
	e, ok := bfl.Lookup(name)
	if !ok {
		return &APIError{Endpoint: name, Message: fmt.Sprintf("%q is not a BFL endpoint this app knows.", name)}
	}
	if e.Method != method {
		return &APIError{Endpoint: name, Message: fmt.Sprintf("%s takes %s, not %s.", name, e.Method, method)}
	}
	return nil
}

func (a *API) getJSON(ctx context.Context, name, path string, query url.Values, out any) error {
	return a.retry(ctx, func(ctx context.Context) error {
		return a.send(ctx, name, http.MethodGet, path, query, nil, 0, out)
	})
}

// retry runs attempt, each under its own timeout, until it succeeds, fails
// for a reason retrying cannot fix, or the attempts run out.
func (a *API) retry(ctx context.Context, attempt func(context.Context) error) error {
	var err error
	for i := 0; ; i++ {
		actx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
		err = attempt(actx)
		cancel()
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || !Retryable(ae) || i >= a.opts.Retries || ctx.Err() != nil {
			return err
		}
		wait := ae.RetryAfter
		if wait <= 0 {
			wait = a.backoff(i)
		}
		if serr := a.opts.Sleep(ctx, wait); serr != nil {
			return err
		}
	}
}

// Retryable reports whether asking again may succeed where err failed: the
// proxy or BFL was busy (429), in trouble (5xx) or out of reach. Any other
// answer would be given again.
func Retryable(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Status >= 500 || (e.Status == 0 && errors.Is(e.Err, errNetwork))
}

// backoff is the delay before retry i+1: Backoff * 2^i, capped, with "equal
// jitter" (between half and all of it) so clients that failed together do not
// come back together.
func (a *API) backoff(i int) time.Duration {
	d := a.opts.Backoff << i
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Sleep waits d or until ctx ends, whichever comes first; every retry and
// poll loop in the app waits through it so that leaving cancels the wait.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send performs one request and decodes a 2xx JSON answer into out.
func (a *API) send(ctx context.Context, name, method, path string, query url.Values, body io.Reader, size int64, out any) error {
	res, err := a.do(ctx, name, method, path, query, body, size)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return decodeBody(name, res, out)
}

func decodeBody(name string, res *http.Response, out any) error {
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	body := &watchedReader{r: res.Body}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		if body.err != nil {
			return brokenOff(name, fmt.Errorf("read %s answer: %w", name, body.err))
		}
		return &APIError{Endpoint: name, Status: res.StatusCode, Message: "The proxy sent an answer this app cannot read: check that the proxy URL in Settings points at a FluxForge proxy.", Err: fmt.Errorf("decode %s answer: %w", name, err)}
	}
	return nil
}

// watchedReader remembers a failed read, which tells a connection that
// broke off mid-answer from a complete answer that is not JSON.
type watchedReader struct {
	r   io.Reader
	err error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		w.err = err
	}
	return n, err
}

// do sends one request and returns the response when it is a 2xx; any other
// answer becomes an *APIError.
func (a *API) do(ctx context.Context, name, method, path string, query url.Values, body io.Reader, size int64) (*http.Response, error) {
	req, err := a.newRequest(ctx, method, path, query, body, size)
	if err != nil {
		return nil, &APIError{Endpoint: name, Message: "The proxy URL in Settings is not valid.", Err: err}
	}
	res, err := a.opts.HTTP.Do(req)
	if err != nil {
		return nil, networkError(name, err)
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		return nil, errorFromResponse(name, res)
	}
	return res, nil
}

func (a *API) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader, size int64) (*http.Request, error) {
	base, token := a.target()
	if base == "" {
		return nil, errors.New("no proxy URL is configured")
	}
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// errNetwork marks failures where no HTTP answer arrived.
var errNetwork = errors.New("no answer from the proxy")

func networkError(name string, err error) *APIError {
	msg := "The proxy could not be reached: check your connection and the proxy URL in Settings."
	if isTimeout(err) {
		msg = "The proxy did not answer in time: try again."
	}
	return &APIError{Endpoint: name, Message: msg, Err: fmt.Errorf("%w: %w", errNetwork, err)}
}

// brokenOff is an answer that stopped before its end: a timeout, or a
// connection that was reset or closed. Like no answer, it is retried where safe.
func brokenOff(name string, err error) *APIError {
	if isTimeout(err) {
		return networkError(name, err)
	}
	return &APIError{Endpoint: name, Message: "The answer from the proxy broke off: check your connection and try again.", Err: fmt.Errorf("%w: %w", errNetwork, err)}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// notSentHeader is the proxy's mark on an error answer for a request that
// never reached BFL (proxy/upstream.go sets it).
const notSentHeader = "X-Not-Sent"

// requestIDHeader names the proxy's id for a request (proxy/middleware.go).
const requestIDHeader = "X-Request-Id"

// withReference ends the message of a failure on the server side with the
// proxy's id for the request: the user can pass it on, and whoever runs
// the proxy finds the request's log lines, which say what went wrong.
func withReference(msg, requestID string) string {
	if requestID == "" {
		return msg
	}
	return msg + " Proxy log reference: " + requestID + "."
}

// errorFromResponse turns a non-2xx answer into an *APIError with a message
// that says what the user can do about it.
func errorFromResponse(name string, res *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	detail := bfl.DecodeError(res.StatusCode, body)
	e := &APIError{
		Endpoint:   name,
		Status:     res.StatusCode,
		Detail:     detail,
		RetryAfter: parseRetryAfter(res.Header.Get("Retry-After"), time.Now()),
		NotSent:    res.Header.Get(notSentHeader) == "true",
		RequestID:  res.Header.Get(requestIDHeader),
		Err:        detail,
	}
	switch s := res.StatusCode; {
	case s == http.StatusUnauthorized && strings.Contains(detail.Detail, "PROXY_TOKEN"):
		e.Message = "The proxy needs its access token: set it in Settings."
	case s == http.StatusPaymentRequired:
		e.Message = "Out of credits: top up at https://dashboard.bfl.ai and try again."
	case (s == http.StatusForbidden || s == http.StatusUnauthorized) && proxyRefusal(detail.Detail):
		// The proxy's own words name the setting to change.
		e.Message = "The proxy refused this request: " + strings.TrimSuffix(detail.Detail, ".") + "."
	case s == http.StatusForbidden || s == http.StatusUnauthorized: // BFL answers a bad key with either
		e.Message = "BFL refused the API key: check BFL_API_KEY on the proxy."
	case name == "finetune" && (s == http.StatusNotFound || s == http.StatusMethodNotAllowed):
		// The proxy forwards this endpoint, so the refusal is BFL's: its 2026
		// API no longer lists training, and the global host never had it.
		e.Message = "BFL does not offer training at this address: BFL_API_URL on the proxy must be a regional host " +
			"such as https://api.us1.bfl.ai. If BFL now trains only in its dashboard (dashboard.bfl.ai), train there, " +
			"then generate here with the model."
	case s == http.StatusNotFound:
		e.Message = "Not found: " + detailText(detail, "the proxy does not know this address.")
	case s == http.StatusRequestEntityTooLarge:
		e.Message = "The upload is too large for the proxy: use fewer or smaller images."
	case s == http.StatusRequestTimeout:
		// The proxy's READ_TIMEOUT cut an upload that stopped arriving.
		e.Message = "The upload was too slow for the proxy and nothing was sent: try again on a steadier connection."
	case s == http.StatusUnprocessableEntity:
		e.Field = detail.Field()
		e.Message = "BFL refused the request: " + detailText(detail, "a value is not valid.")
	case s == http.StatusTooManyRequests:
		e.Message = "Too many tasks are running: wait for some to finish, then try again."
	case s >= 500 && e.NotSent:
		e.Message = withReference("The proxy could not reach BFL, so nothing was sent: try again in a minute.", e.RequestID)
	case s >= 500:
		e.Message = withReference(fmt.Sprintf("BFL or the proxy is having trouble (HTTP %d): try again in a minute.", s), e.RequestID)
	default:
		e.Message = "The request was refused: " + detailText(detail, http.StatusText(s))
	}
	return e
}

// proxyRefusal reports whether a 401 or 403 came from the proxy itself: its
// refusals name the variable to change, which BFL's never do.
func proxyRefusal(detail string) bool {
	for _, name := range []string{"PROXY_TOKEN", "CORS_ORIGINS", "POLL_HOSTS", "DELIVERY_HOSTS"} {
		if strings.Contains(detail, name) {
			return true
		}
	}
	return false
}

// detailText is what BFL said, without the status that the message already implies.
func detailText(d *bfl.Error, fallback string) string {
	if len(d.Issues) > 0 {
		parts := make([]string, len(d.Issues))
		for i, is := range d.Issues {
			parts[i] = is.String()
		}
		return strings.Join(parts, "; ")
	}
	if d.Detail != "" {
		return d.Detail
	}
	return fallback
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 means absent or unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}
