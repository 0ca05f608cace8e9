//go:build unix && !aix

package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// hasStrayBytes reports whether an idle upstream connection has something
// to read: bytes the upstream sent unasked (a late second answer, a 408
// before it hangs up) or its close. Either way the connection must not carry
// another request, whose answer those bytes would pass for. The peek does
// not block: a quiet connection costs one system call.
func hasStrayBytes(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	stray := false
	// Control, not Read: Read refuses at once when the read deadline has
	// passed, and an idle connection may still carry its last answer's.
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet := errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR)
		stray = n > 0 || !quiet // data, EOF (0 bytes, no error), or a socket error
	})
	return err != nil || stray
}
