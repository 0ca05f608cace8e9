//go:build !unix || aix

package proxy

import "net"

// hasStrayBytes cannot peek without blocking here; a connection is reused
// as net/http's pool would without its reader goroutine.
func hasStrayBytes(net.Conn) bool { return false }
