// Package netproxy is a TCP proxy that can cut the network between a client
// and a server on demand: chaos runs put one between every node and the
// store, so that one node can be partitioned from the store while the others
// carry on.
//
// A Proxy accepts on a loopback port and pipes every connection to its
// target. Cut closes every open connection and refuses (accepts, then closes
// at once) new ones until Heal. Traffic only ever goes to the target given.
//
// Goroutines: one accept loop per Proxy and two copy goroutines per open
// connection, all tracked by the Proxy's WaitGroup; Close cancels and waits.
package netproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// DialTimeout bounds each dial to the target.
const DialTimeout = 2 * time.Second

// Proxy pipes TCP connections from Addr to a target.
type Proxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	cut    bool
	closed bool
	conns  map[*pair]struct{}
	// stats
	accepted, refused int

	wg sync.WaitGroup
}

// pair is one proxied connection: the client's and the target's side.
type pair struct {
	client, server net.Conn
	once           sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		_ = p.client.Close()
		if p.server != nil {
			_ = p.server.Close()
		}
	})
}

// Listen starts a proxy on listen (e.g. "127.0.0.1:0") to target.
func Listen(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[*pair]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is where connections are piped to.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetTarget changes where new connections go; open ones are kept.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Cut closes every open connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = make(map[*pair]struct{})
	p.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// IsCut reports whether the proxy is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Stats returns how many connections were piped and how many refused.
func (p *Proxy) Stats() (accepted, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, p.refused
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	err := p.ln.Close()
	for c := range conns {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (too many files): back off a
			// little rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		if p.closed || p.cut {
			p.refused++
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		target := p.target
		pr := &pair{client: c}
		p.conns[pr] = struct{}{}
		p.accepted++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(pr, target)
	}
}

// pipe dials the target and copies both ways until either side ends or the
// pair is closed by Cut or Close.
func (p *Proxy) pipe(pr *pair, target string) {
	defer p.wg.Done()
	defer p.forget(pr)
	s, err := net.DialTimeout("tcp", target, DialTimeout)
	if err != nil {
		pr.close()
		return
	}
	p.mu.Lock()
	_, live := p.conns[pr]
	if live {
		pr.server = s
	}
	p.mu.Unlock()
	if !live { // cut or closed while dialling
		_ = s.Close()
		pr.close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// One side ended: end both, so that neither half lingers.
		pr.close()
	}
	go cp(s, pr.client)
	go cp(pr.client, s)
	wg.Wait()
}

func (p *Proxy) forget(pr *pair) {
	p.mu.Lock()
	if p.conns != nil {
		delete(p.conns, pr)
	}
	p.mu.Unlock()
}
