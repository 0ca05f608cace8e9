package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"sync/atomic"
	"syscall"
	"time"
)

// newTransport is tuned for many small JSON calls and a few huge uploads:
// plenty of idle connections per host, large socket buffers, no
// transparent decompression (bodies pass through untouched). control, when
// set, vets every address before a connection is made.
func newTransport(cfg Config, control func(network, address string, c syscall.RawConn) error) *http.Transport {
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second, Control: control}
	return &http.Transport{
		DialContext: d.DialContext,
		// HTTP/2 only helps over TLS; a plain loopback upstream stays on HTTP/1.1.
		ForceAttemptHTTP2:      cfg.upstream.Scheme == "https",
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		ResponseHeaderTimeout:  cfg.UpstreamTimeout,
		MaxResponseHeaderBytes: int64(cfg.MaxHeaderKB) << 10,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		WriteBufferSize:        64 << 10,
		ReadBufferSize:         64 << 10,
	}
}

// connectError marks a request that failed before it had a connection (the
// name did not resolve, the dial or the TLS handshake failed or timed out):
// it never left this machine, so a submit cannot have reached BFL.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// Timeout answers for the error inside, as *url.Error asks its Err.
func (e *connectError) Timeout() bool { return isTimeout(e.err) }

// connectTracked is a transport whose failures before a connection was made
// come back as *connectError.
type connectTracked struct{ t http.RoundTripper }

func (c connectTracked) RoundTrip(r *http.Request) (*http.Response, error) {
	var got atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { got.Store(true) }}
	resp, err := c.t.RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
	if err != nil && !got.Load() {
		err = &connectError{err}
	}
	return resp, err
}

// errBlockedAddr marks a connection refused because of where it would go.
var errBlockedAddr = errors.New("address blocked")

// dialGuard refuses connections to loopback, private, link-local and other
// non-public addresses, so an allowed host name that resolves inward (DNS
// rebinding) cannot reach this machine or its network. The one exception is
// a loopback upstream's own port, which live-mode tests and a local
// simulator need.
func dialGuard(upstream *url.URL) func(network, address string, c syscall.RawConn) error {
	localPort := ""
	if loopback(upstream.Hostname()) {
		localPort = upstream.Port()
		if localPort == "" {
			localPort = map[string]string{"http": "80", "https": "443"}[upstream.Scheme]
		}
	}
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %q is not an IP address and port: %w", errBlockedAddr, address, err)
		}
		ip := ap.Addr().Unmap()
		if ip.IsLoopback() && localPort != "" && fmt.Sprint(ap.Port()) == localPort {
			return nil
		}
		if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || isSpecial(ip) {
			return fmt.Errorf("%w: %s is not a public address", errBlockedAddr, ip)
		}
		return nil
	}
}

// isSpecial covers ranges that are not public although IsGlobalUnicast
// says they are.
func isSpecial(ip netip.Addr) bool {
	for _, p := range []string{
		"100.64.0.0/10", // carrier-grade NAT
		"198.18.0.0/15", // benchmarking
		"192.0.0.0/24",  // IETF protocol assignments
		"64:ff9b::/96",  // NAT64, can embed a private IPv4 address
		"2001:db8::/32", // documentation
		"fec0::/10",     // deprecated site-local
	} {
		if netip.MustParsePrefix(p).Contains(ip) {
			return true
		}
	}
	return false
}
