// Package loopback hands out 127.0.0.1 addresses for the services that tests
// and the outage replay start, each on a port of its own.
package loopback

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
)

// The ports come from below Linux's ephemeral range (32768–60999), where the
// kernel picks the local ports of outgoing connections and of listeners on
// ":0": a port from there could be taken by a client running beside the
// service (a test's own Postgres or Redis connection) between the moment it
// is found free and the moment the service binds it — or binds it again
// after a restart.
const (
	lowest = 20000
	ports  = 12000
)

// FreeAddr returns an address whose port is free now and that it has not
// returned before in this process: a caller may ask for several before any
// is bound (the replay's stack asks for six), and one port given to two
// services leaves the second unable to listen.
func FreeAddr() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 4 * ports {
		port := lowest + mrand.N(ports) //nolint:gosec // G404: a port to try, nothing secret
		if handedOut.ports[port] {
			continue
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		ln.Close()
		handedOut.ports[port] = true
		return ln.Addr().String(), nil
	}
	return "", fmt.Errorf("loopback: no free port found in %d–%d", lowest, lowest+ports-1)
}

// handedOut is every port FreeAddr has returned.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}
