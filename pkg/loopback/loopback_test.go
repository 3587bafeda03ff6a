package loopback

import (
	"net"
	"strconv"
	"testing"
)

// The addresses are on 127.0.0.1, below the ephemeral range, bindable, and
// never the same twice: a stack asks for six before its services bind any,
// and one port given to two services left the second unable to listen
// ("address already in use"), restarted in a loop.
func TestFreeAddr(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 { // among 12,000 ports, random picks would repeat some hundred times
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(port); host != "127.0.0.1" || n < 20000 || n >= 32000 {
			t.Fatalf("%s: want 127.0.0.1 and a port in 20000–31999", addr)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		ln.Close()
	}
}
