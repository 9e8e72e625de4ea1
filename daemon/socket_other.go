//go:build !unix

package daemon

import (
	"fmt"
	"net"
)

// listenSocket: Unix sockets are for Unix systems here.
func listenSocket(p string) (net.Listener, error) {
	return nil, fmt.Errorf("socket %s: Unix sockets are not supported on this system", p)
}
