package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
)

// The proxy's hot path reads request and answer heads of the common shape
// itself, and leaves every other shape to net/http. What it reads, it must
// read exactly as net/http would; FuzzLaneParsesAsNetHTTP and
// FuzzAnswerHeadReadsAsNetHTTP hold it to that.

// headEnd finds where a head ends the way net/http's reader does, at the
// first line feed followed by an empty line. It returns the head's length
// when that blank line is CRLF CRLF, -1 when it is any other line-feed
// form, and 0, false while no blank line has arrived.
func headEnd(b []byte) (int, bool) {
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], '\n')
		if k < 0 {
			return 0, false
		}
		k += i
		rest := b[k+1:]
		switch {
		case len(rest) == 0 || len(rest) == 1 && rest[0] == '\r':
			return 0, false
		case rest[0] == '\n':
			return -1, false
		case rest[0] == '\r' && rest[1] == '\n':
			if k == 0 || b[k-1] != '\r' {
				return -1, false
			}
			return k + 3, true
		}
		i = k + 1
	}
}

func validName(b string) bool {
	if len(b) == 0 {
		return false
	}
	for i := range len(b) {
		if !tokenByte(b[i]) {
			return false
		}
	}
	return true
}

func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c != 0 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func validValue(b string) bool {
	for i := range len(b) {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// readFields reads a head's header lines, the part after its first line
// through the blank line, as textproto would: canonical keys, values
// trimmed of spaces and tabs. Each value is a substring of fields. It
// reports false for any line that is not a plain "Name: value".
func readFields(fields string) (http.Header, bool) {
	lines := strings.Count(fields, "\n")
	h := make(http.Header, lines)
	values := make([]string, 0, lines)
	for {
		line, rest, _ := strings.Cut(fields, "\r\n")
		fields = rest
		if line == "" {
			return h, true
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validName(name) {
			return nil, false
		}
		value = strings.Trim(value, " \t")
		if !validValue(value) {
			return nil, false
		}
		key := http.CanonicalHeaderKey(name)
		if have, ok := h[key]; ok {
			h[key] = append(have, value)
			continue
		}
		values = append(values, value)
		h[key] = values[len(values)-1 : len(values) : len(values)]
	}
}

// keepAlive reads a Connection header of the simple kinds: none,
// keep-alive or close. ok is false for any other.
func keepAlive(h http.Header) (keep, ok bool) {
	switch v := h["Connection"]; {
	case len(v) == 0, len(v) == 1 && strings.EqualFold(v[0], "keep-alive"):
		return true, true
	case len(v) == 1 && strings.EqualFold(v[0], "close"):
		return false, true
	}
	return false, false
}

// readAnswerHead reads an answer's head off br for a GET. One that came
// whole in the buffer, with a plain status line, a single Content-Length
// and nothing else that changes its framing, is read here; any other goes
// to http.ReadResponse, which reads it from the same place.
func readAnswerHead(br *bufio.Reader, get *http.Request) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		// bufio hands an error out once; reading again would report what
		// the socket says next (EOF after a reset), not what happened.
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b, _ := br.Peek(br.Buffered())
	n, found := headEnd(b)
	if !found {
		return http.ReadResponse(br, get)
	}
	resp := leanAnswer(b[:n])
	if resp == nil {
		return http.ReadResponse(br, get)
	}
	_, _ = br.Discard(n)
	resp.Request = get
	if resp.ContentLength == 0 {
		resp.Body = http.NoBody
	} else {
		resp.Body = &fixedBody{r: br, left: resp.ContentLength}
	}
	return resp, nil
}

// leanAnswer reads a whole answer head of the plain shape, or returns nil.
func leanAnswer(head []byte) *http.Response {
	hs := string(head)
	line, rest, _ := strings.Cut(hs, "\r\n")
	status, ok := strings.CutPrefix(line, "HTTP/1.1 ")
	if !ok || len(status) < 3 || len(status) > 3 && status[3] != ' ' || !validValue(status) {
		return nil
	}
	code := 0
	for i := range 3 {
		d := status[i]
		if d < '0' || d > '9' {
			return nil
		}
		code = code*10 + int(d-'0')
	}
	// Informational and bodiless answers have rules of their own.
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	h, ok := readFields(rest)
	if !ok {
		return nil
	}
	for _, k := range [...]string{"Transfer-Encoding", "Trailer", "Pragma"} {
		if _, ok := h[k]; ok {
			return nil
		}
	}
	keep, ok := keepAlive(h)
	if !ok {
		return nil
	}
	if !keep {
		delete(h, "Connection") // as ReadResponse does
	}
	cl := h["Content-Length"]
	if len(cl) != 1 || len(cl[0]) == 0 || len(cl[0]) > 18 {
		return nil
	}
	var length int64
	for i := range len(cl[0]) {
		d := cl[0][i]
		if d < '0' || d > '9' {
			return nil
		}
		length = length*10 + int64(d-'0')
	}
	return &http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: length, Close: !keep,
	}
}

// fixedBody is an answer body of known length. Like net/http's, it returns
// io.EOF with its last bytes, so the connection can go back to the pool
// without one more read, and io.ErrUnexpectedEOF if the upstream cuts it
// short.
type fixedBody struct {
	r    io.Reader
	left int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }
