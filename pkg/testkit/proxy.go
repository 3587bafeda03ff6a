package testkit

import (
	"context"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy a test can cut: while it is down, connections are
// accepted and closed at once and live ones are dropped, which is what a
// client sees when the network to a dependency fails.
type Proxy struct {
	Addr   string
	target string
	up     atomic.Bool
	ln     net.Listener
	sent   atomic.Int64
	delay  atomic.Int64 // time.Duration

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
		go func() { _, _ = io.Copy(out, &fromClient{in, p}); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}

// Sent is how many times the proxy has forwarded what clients sent: once per
// write that reached it whole, so about once per round trip a client starts
// (one message, or a pipeline of them written at once).
func (p *Proxy) Sent() int64 { return p.sent.Load() }

// RoundTrips runs do three times, setUp (if any) before each and not counted,
// and returns the fewest sends a run took: the round trips do itself makes.
// The first run may prepare its statements on the connection, and
// database/sql pings a connection unused for a second before handing it out.
func (p *Proxy) RoundTrips(t testing.TB, setUp func(), do func() error) int64 {
	t.Helper()
	least := int64(math.MaxInt64)
	for range 3 {
		if setUp != nil {
			setUp()
		}
		before := p.Sent()
		if err := do(); err != nil {
			t.Fatal(err)
		}
		least = min(least, p.Sent()-before)
	}
	return least
}

// SetDelay holds everything clients send for d before forwarding it: every
// round trip a client starts takes d longer, as with a far or slow server.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// fromClient reads what a client sends, counting it and holding it back.
type fromClient struct {
	r io.Reader
	p *Proxy
}

func (c *fromClient) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.sent.Add(1)
		time.Sleep(time.Duration(c.p.delay.Load()))
	}
	return n, err
}
