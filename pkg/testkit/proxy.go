package testkit

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy a test can cut: while it is down, connections are
// accepted and closed at once and live ones are dropped, which is what a
// client sees when the network to a dependency fails.
type Proxy struct {
	Addr   string
	target string
	up     atomic.Bool
	ln     net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// NewProxy listens on 127.0.0.1 and forwards to target while up.
func NewProxy(t testing.TB, target string, up bool) *Proxy {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.up.Store(up)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.SetUp(false) })
	return p
}

// SetUp switches forwarding on or off; off also drops live connections.
func (p *Proxy) SetUp(up bool) {
	p.up.Store(up)
	if up {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.up.Load() {
			in.Close()
			continue
		}
		var d net.Dialer
		out, err := d.DialContext(context.Background(), "tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.track(in)
		p.track(out)
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}
