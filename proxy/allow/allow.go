// Package allow decides which URLs the proxy may fetch on a browser's behalf.
//
// A List is built from host patterns and exact origins. It compares parsed
// URLs, never substrings, and refuses anything that could reach a host other
// than the one the pattern names: userinfo, IP literals in any notation,
// percent-encoded or non-ASCII hosts, hosts ending in a dot, and ports the
// pattern does not name.
//
// Pattern syntax (case-insensitive):
//
//	api.us1.bfl.ai          exactly this host, https, default port
//	*.bfl.ai                one or more labels before bfl.ai (never bfl.ai itself)
//	delivery.*.bfl.ai       a "*" anywhere but first stands for exactly one label
//	*.bfl.ai:8443           https on port 8443 only
//
// An origin (scheme://host[:port]) is matched exactly, scheme and port
// included; it is the one way to allow plain http or an IP address, so a
// proxy can be tested against a local upstream.
package allow

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The rules a URL can break; Check wraps one of them with the details.
var (
	ErrScheme    = errors.New("scheme must be https")
	ErrUserinfo  = errors.New("userinfo is not allowed")
	ErrHost      = errors.New("host is malformed")
	ErrIP        = errors.New("IP address hosts are not allowed")
	ErrPort      = errors.New("port is not allowed")
	ErrNotListed = errors.New("host is not on the allowlist")
	ErrPattern   = errors.New("invalid allowlist pattern")
)

// List is an immutable allowlist; it is safe for concurrent use.
type List struct {
	patterns []pattern
	origins  []origin
	desc     string
}

type pattern struct {
	labels []string // lower-case; "*" is a wildcard label
	port   string   // "" means the https default
}

type origin struct {
	scheme, host, port string // port always explicit
}

// New builds a List from host patterns (see the package doc) and exact
// origins such as "http://127.0.0.1:9000".
func New(patterns, origins []string) (*List, error) {
	l := &List{}
	var desc []string
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pat, err := parsePattern(p)
		if err != nil {
			return nil, err
		}
		l.patterns = append(l.patterns, pat)
		desc = append(desc, strings.ToLower(p))
	}
	for _, o := range origins {
		org, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		l.origins = append(l.origins, org)
		desc = append(desc, org.String())
	}
	if len(desc) == 0 {
		return nil, fmt.Errorf("%w: the list is empty", ErrPattern)
	}
	l.desc = strings.Join(desc, ",")
	return l, nil
}

// String lists the patterns and origins, for error messages and banners.
func (l *List) String() string { return l.desc }

// Check reports whether the proxy may fetch u. The error wraps one of the
// Err values and names the rule that refused it.
func (l *List) Check(u *url.URL) error {
	if u == nil {
		return fmt.Errorf("%w: no URL", ErrHost)
	}
	if u.User != nil {
		return fmt.Errorf("%w (the part before @ in %q)", ErrUserinfo, u.Redacted())
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%w: the URL has no host", ErrHost)
	}
	scheme := strings.ToLower(u.Scheme)
	host, port, bracketed, err := splitHost(u.Host)
	if err != nil {
		return err
	}
	for _, o := range l.origins {
		if o.matches(scheme, host, port) {
			return nil
		}
	}
	if bracketed {
		return fmt.Errorf("%w: %q is an IPv6 literal", ErrIP, u.Host)
	}
	if scheme != "https" {
		return fmt.Errorf("%w, not %q", ErrScheme, u.Scheme)
	}
	if err := checkName(host); err != nil {
		return err
	}
	labels := strings.Split(host, ".")
	var portRefused bool
	for _, p := range l.patterns {
		if !p.matchLabels(labels) {
			continue
		}
		if p.allowsPort(port) {
			return nil
		}
		portRefused = true
	}
	if portRefused {
		return fmt.Errorf("%w: %s on host %q (allowed: %s)", ErrPort, port, host, l.desc)
	}
	return fmt.Errorf("%w: %q (allowed: %s)", ErrNotListed, host, l.desc)
}

// splitHost separates host and port of a URL's Host field and lower-cases
// the host; bracketed reports an IPv6 literal (returned without brackets).
// Empty and non-numeric ports are refused.
func splitHost(hostport string) (host, port string, bracketed bool, err error) {
	host = hostport
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", false, fmt.Errorf("%w: unclosed bracket in %q", ErrHost, hostport)
		}
		host, port, bracketed = hostport[1:end], strings.TrimPrefix(hostport[end+1:], ":"), true
		if port == "" && len(hostport) > end+1 {
			return "", "", false, fmt.Errorf("%w: empty port in %q", ErrPort, hostport)
		}
	} else if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:]
		if port == "" {
			return "", "", false, fmt.Errorf("%w: empty port in %q", ErrPort, hostport)
		}
	}
	if port != "" && !validPort(port) {
		return "", "", false, fmt.Errorf("%w: %q is not a port number", ErrPort, port)
	}
	if host == "" {
		return "", "", false, fmt.Errorf("%w: empty host", ErrHost)
	}
	return strings.ToLower(host), port, bracketed, nil
}

// validPort accepts 1-65535 written without sign or leading zeros.
func validPort(port string) bool {
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n != 0 && strconv.FormatUint(n, 10) == port
}

// checkName accepts only plain ASCII DNS names and refuses anything a
// resolver could read as an IPv4 address (dotted, decimal, hex, octal, short).
func checkName(host string) error {
	if strings.HasSuffix(host, ".") {
		return fmt.Errorf("%w: %q ends with a dot", ErrHost, host)
	}
	if len(host) > 253 {
		return fmt.Errorf("%w: host is longer than 253 characters", ErrHost)
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if err := checkLabel(label); err != nil {
			return fmt.Errorf("%w in host %q", err, host)
		}
	}
	// Resolvers (and WHATWG URL parsing) treat a name whose last label is a
	// number as an IPv4 address: 127.1, 2130706433, 0x7f000001, 0177.0.0.1.
	if numeric(labels[len(labels)-1]) {
		return fmt.Errorf("%w: %q reads as an IPv4 address", ErrIP, host)
	}
	return nil
}

func checkLabel(label string) error {
	if label == "" {
		return fmt.Errorf("%w: empty label", ErrHost)
	}
	if len(label) > 63 {
		return fmt.Errorf("%w: label longer than 63 characters", ErrHost)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(label)-1:
		default:
			return fmt.Errorf("%w: character %q is not allowed (plain ASCII letters, digits and inner hyphens only)", ErrHost, c)
		}
	}
	return nil
}

// numeric reports whether a label is a decimal, octal or 0x-hex number.
func numeric(label string) bool {
	s := label
	if strings.HasPrefix(s, "0x") {
		s = s[2:]
		for i := 0; i < len(s); i++ {
			if !strings.ContainsRune("0123456789abcdef", rune(s[i])) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func parsePattern(p string) (pattern, error) {
	lower := strings.ToLower(p)
	host, port := lower, ""
	if i := strings.LastIndexByte(lower, ':'); i >= 0 {
		host, port = lower[:i], lower[i+1:]
		if !validPort(port) {
			return pattern{}, fmt.Errorf("%w %q: port %q is not a port number", ErrPattern, p, port)
		}
		if port == "443" {
			port = ""
		}
	}
	labels := strings.Split(host, ".")
	concrete := 0
	for i, label := range labels {
		if label == "*" {
			continue
		}
		if err := checkLabel(label); err != nil {
			return pattern{}, fmt.Errorf("%w %q: %w", ErrPattern, p, err)
		}
		if i > 0 {
			concrete++
		}
	}
	// A wildcard must sit under at least two concrete labels, so "*.ai" or
	// "*" can never open a whole top-level domain.
	if strings.Contains(host, "*") && concrete < 2 {
		return pattern{}, fmt.Errorf("%w %q: a wildcard needs at least two fixed labels after it (like *.bfl.ai)", ErrPattern, p)
	}
	if err := checkName(strings.ReplaceAll(host, "*", "x")); err != nil {
		return pattern{}, fmt.Errorf("%w %q: %w", ErrPattern, p, err)
	}
	return pattern{labels: labels, port: port}, nil
}

// matchLabels: a leading "*" stands for one or more labels, any other "*"
// for exactly one; every other label must be equal.
func (p pattern) matchLabels(host []string) bool {
	want := p.labels
	if want[0] == "*" {
		rest := want[1:]
		if len(host) <= len(rest) {
			return false
		}
		return equalLabels(rest, host[len(host)-len(rest):])
	}
	return len(host) == len(want) && equalLabels(want, host)
}

func equalLabels(want, host []string) bool {
	for i, w := range want {
		if w != "*" && w != host[i] {
			return false
		}
	}
	return true
}

func (p pattern) allowsPort(port string) bool {
	if port == "443" {
		port = ""
	}
	return port == p.port
}

func parseOrigin(s string) (origin, error) {
	u, err := url.Parse(s)
	if err != nil {
		return origin{}, fmt.Errorf("%w: origin %q: %w", ErrPattern, s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil {
		return origin{}, fmt.Errorf("%w: origin %q must be http(s)://host[:port] without userinfo", ErrPattern, s)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	return origin{scheme: scheme, host: host, port: port}, nil
}

func (o origin) matches(scheme, host, port string) bool {
	if port == "" {
		port = defaultPort(scheme)
	}
	return scheme == o.scheme && host == o.host && port == o.port
}

func (o origin) String() string {
	h := o.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if o.port == defaultPort(o.scheme) {
		return o.scheme + "://" + h
	}
	return o.scheme + "://" + h + ":" + o.port
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}
