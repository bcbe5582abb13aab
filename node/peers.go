package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// The peer watch (docs/design.md, "A crashed process seen at once"). A node
// lease lapses a TTL after its node last renewed it, whatever happened to
// the node: that bound is what a hang or a cut network needs, since nobody
// can tell them from a slow node. A process that is gone, though, tells on
// itself: its kernel closes its sockets. So each node holds one idle
// connection to each live peer's advertised address: it asks GET /healthz
// once, notes the process that answers (wire.InstanceHeader), and keeps
// the connection alive, sending nothing more. When it closes, the node
// dials again at once:
//
//   - the same process answers: the peer is there (an HTTP server closes a
//     keep-alive connection after its IdleTimeout, 2 min by default); the
//     new connection is held;
//   - refused (ECONNREFUSED), or another process answers (the node was
//     restarted on the same address), after a connection had been held:
//     the process watched is gone, and the node ends the peer's node lease
//     now (ReleaseNode with ReasonCrashed), which ends every topic lease
//     under it in one step and wakes the standbys, as a lapse would, a TTL
//     sooner;
//   - anything else (a timeout, an unreachable host): nothing is concluded,
//     the node dials again later, and the lease lapses as it would have.
//
// Ending a live node's lease is safe, whatever the reason: every fenced
// write checks the node lease in the store, so a node wrongly found gone
// loses its leases (its commits are refused, it steps down and takes a new
// node lease), as a node whose renewals came late does, and never
// publishes beside its successor. It costs no store operation while idle.

const (
	// peerScan is how often the watches are compared with the node
	// leases the session last read (in memory: no store operation).
	peerScan = 50 * time.Millisecond
	// peerDialTimeout bounds a dial of a peer.
	peerDialTimeout = time.Second
	// peerRetry is the wait after a dial that neither connected nor was
	// refused, and the longest between dials of connections that close
	// as soon as they open.
	peerRetry = time.Second
	// peerHandshakeRetry is the wait after a failed TLS handshake.
	peerHandshakeRetry = time.Minute
	// peerShort is how long an answered connection must stay open for the
	// next dial to go out at once; after two shorter ones in a row the
	// dials back off.
	peerShort = time.Second
	// The membership is read for the address of a peer not yet known at
	// most every peerMembersEvery for peerMembersFast after the peer's
	// node lease was first seen (a node that just started may not be a
	// member yet), then every peerMembersSlow (a node that advertises no
	// address).
	peerMembersEvery = 100 * time.Millisecond
	peerMembersFast  = 10 * time.Second
	peerMembersSlow  = 10 * time.Second
)

// peerKey is one node lease: a node's process, from its start to its end.
type peerKey struct {
	node  string
	epoch uint64
}

// peerWatch holds a connection to every live peer and ends the node lease
// of a peer whose process is found gone.
type peerWatch struct {
	self   string
	addr   string // this node's own address, never watched
	leases func() []baton.NodeLease
	// members reads the membership (the peers' addresses).
	members func(ctx context.Context) ([]baton.Member, error)
	// gone ends the node lease of a peer found gone. Its context is the
	// watch's run's, not the watch's own: the end's first write makes the
	// node lease not live, the next scan stops its watch, and a watch's
	// context cancelled then cut the rest of the end short. On Redis
	// Cluster that rest ends every bucket's copy of the node lease; cut,
	// the copies kept the peer's topics held until they lapsed, with no
	// signal when they did, and the standbys parked behind it stayed
	// parked (integration TestClusterKillNode, about one run in five on a
	// loaded machine).
	gone func(ctx context.Context, nl baton.NodeLease)
	// life is run's context, for gone.
	life context.Context
	dial func(ctx context.Context, addr string) (net.Conn, error)
	// pause waits d or until ctx ends (sleep; tests record it).
	pause func(ctx context.Context, d time.Duration)
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	watches map[peerKey]context.CancelFunc
	held    map[peerKey]string // watches holding a connection: the address
	addrs   map[string]string
	seen    map[string]time.Time // when a node without a known address was first seen
	read    time.Time            // of the membership
	wg      sync.WaitGroup
}

// errHandshake marks a TLS handshake that failed: a peer that wants a
// client certificate (--tls-require-client-cert) refuses the watch's,
// which has none, and is dialled again only after peerHandshakeRetry, so
// that it does not log a failed handshake every second.
var errHandshake = errors.New("peer watch: TLS handshake")

// dialPeer dials addr with a timeout, and with tlsOn completes a TLS
// handshake. The handshake does not verify the peer's certificate: what
// the connection says is never trusted beyond telling one process from
// another, and nothing secret is sent over it (docs/security.md).
func dialPeer(tlsOn bool) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: peerDialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || !tlsOn {
			return c, err
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only the connection's end is watched
		hctx, cancel := context.WithTimeout(ctx, peerDialTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: %w", errHandshake, err)
		}
		return tc, nil
	}
}

// watchable says whether addr names a place to dial: an address given as
// the unspecified one ("[::]:8080", "0.0.0.0:8080") says where the peer
// listens on its own machine, not where it is, and is left alone.
func watchable(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return false
	}
	return true
}

// run compares the watches with the live node leases every peerScan until
// ctx ends, then waits for its watches.
func (p *peerWatch) run(ctx context.Context) {
	p.life = ctx
	p.mu.Lock()
	p.watches = make(map[peerKey]context.CancelFunc)
	if p.held == nil {
		p.held = make(map[peerKey]string)
	}
	p.mu.Unlock()
	p.addrs = make(map[string]string)
	p.seen = make(map[string]time.Time)
	t := time.NewTicker(peerScan)
	defer t.Stop()
	for {
		p.scan(ctx)
		select {
		case <-ctx.Done():
			p.mu.Lock()
			for _, cancel := range p.watches {
				cancel()
			}
			p.mu.Unlock()
			p.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// scan starts a watch for every live peer's node lease not yet watched,
// and stops those of node leases no longer live (lapsed or ended: the
// store's own expiry takes over).
func (p *peerWatch) scan(ctx context.Context) {
	live := make(map[peerKey]bool)
	now := p.now()
	every := time.Duration(0) // 0: every address known
	for _, nl := range p.leases() {
		if nl.Node == p.self || nl.Remaining <= 0 {
			continue
		}
		k := peerKey{nl.Node, nl.Epoch}
		live[k] = true
		if _, ok := p.addrs[nl.Node]; !ok {
			if _, ok := p.seen[nl.Node]; !ok {
				p.seen[nl.Node] = now
			}
			d := peerMembersSlow
			if now.Sub(p.seen[nl.Node]) < peerMembersFast {
				d = peerMembersEvery
			}
			if every == 0 || d < every {
				every = d
			}
		}
	}
	// Only the live peers' addresses are kept: node ids such as the
	// default hostname-pid change with every restart.
	nodes := make(map[string]bool, len(live))
	for k := range live {
		nodes[k.node] = true
	}
	for node := range p.addrs {
		if !nodes[node] {
			delete(p.addrs, node)
		}
	}
	for node := range p.seen {
		if !nodes[node] {
			delete(p.seen, node)
		}
	}
	if every > 0 && now.Sub(p.read) >= every {
		p.read = now
		ms, err := p.members(ctx)
		if err != nil {
			p.log.Debug("peer watch: read the membership", "err", err)
		}
		for _, m := range ms {
			if m.Addr != "" {
				p.addrs[m.Node] = m.Addr
				delete(p.seen, m.Node)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, cancel := range p.watches {
		if !live[k] {
			cancel()
			delete(p.watches, k)
		}
	}
	for k := range live {
		addr, ok := p.addrs[k.node]
		if _, watched := p.watches[k]; watched || !ok || addr == p.addr || !watchable(addr) {
			continue
		}
		p.log.Debug("peer watch: watching", "peer", k.node, "epoch", k.epoch, "addr", addr)
		wctx, cancel := context.WithCancel(ctx)
		p.watches[k] = cancel
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.watch(wctx, k, addr)
		}()
	}
}

// watch holds a connection to addr, the address of k's node, and re-dials
// whenever it closes, until ctx ends or the peer is found gone: its address
// refuses connections, or another process answers there (a restart on the
// same address, before the watch dialled again).
func (p *peerWatch) watch(ctx context.Context, k peerKey, addr string) {
	held := false // a connection was held: a refusal now means gone
	var inst string
	short := 0  // answered connections in a row that closed within peerShort
	failed := 0 // accepted connections in a row that did not answer
	warned := false
	for ctx.Err() == nil {
		c, err := p.dial(ctx, addr)
		switch {
		case err == nil:
			opened := p.now()
			got, br, perr := probe(ctx, c, addr)
			switch ok := perr == nil; {
			case errors.Is(perr, errHandshake):
				c.Close()
				p.handshakeFailed(ctx, k, addr, perr, &warned)
			case ok && held && got != inst:
				c.Close()
				p.log.Info("peer watch: another process answers at the peer's address: the one watched is gone; ending its node lease",
					"peer", k.node, "epoch", k.epoch, "addr", addr)
				p.gone(p.life, baton.NodeLease{Node: k.node, Epoch: k.epoch})
				return
			case ok:
				held, inst, failed = true, got, 0
				p.setHeld(k, addr)
				hold(ctx, c, br)
				p.setHeld(k, "")
				if p.now().Sub(opened) < peerShort {
					short++
				} else {
					short = 0
				}
				if short >= 2 {
					p.pause(ctx, backoff(short-2))
				}
			default:
				// A process being killed may still accept into its
				// listener's queue for a moment, then reset: dial again
				// at once the first time.
				c.Close()
				if failed++; failed >= 2 {
					p.pause(ctx, backoff(failed-2))
				}
			}
		case held && errors.Is(err, syscall.ECONNREFUSED):
			if ctx.Err() == nil {
				p.log.Info("peer watch: the peer's address refuses connections: its process is gone; ending its node lease",
					"peer", k.node, "epoch", k.epoch, "addr", addr)
				p.gone(p.life, baton.NodeLease{Node: k.node, Epoch: k.epoch})
			}
			return
		case errors.Is(err, errHandshake):
			p.handshakeFailed(ctx, k, addr, err, &warned)
		default:
			p.pause(ctx, peerRetry)
		}
	}
}

func (p *peerWatch) setHeld(k peerKey, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr != "" {
		p.held[k] = addr
	} else {
		delete(p.held, k)
	}
}

// watching lists the nodes whose process is watched now (a connection
// held), sorted.
func (p *peerWatch) watching() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.held))
	for k := range p.held {
		out = append(out, k.node)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reach returns the address of node's process if the watch holds a
// connection to it now: the process is there, and answered at that
// address.
func (p *peerWatch) reach(node string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, addr := range p.held {
		if k.node == node {
			return addr, true
		}
	}
	return "", false
}

// handshakeFailed says once that the peer refuses the watch's TLS, and
// waits peerHandshakeRetry before the next try.
func (p *peerWatch) handshakeFailed(ctx context.Context, k peerKey, addr string, err error, warned *bool) {
	if !*warned {
		*warned = true
		p.log.Info("peer watch: the TLS handshake with a peer fails (does it require client certificates?); its crash is noticed at the lease TTL",
			"peer", k.node, "addr", addr, "err", err)
	}
	p.pause(ctx, peerHandshakeRetry)
}

// backoff is the wait before the next dial after n+2 connections in a row
// that closed at once: 50 ms, doubling, up to peerRetry.
func backoff(n int) time.Duration {
	return min(peerRetry, 50*time.Millisecond<<min(n, 5))
}

// probe asks c, a new connection to addr, for GET /healthz and returns the
// instance that answers (wire.InstanceHeader), and the reader the
// connection goes on with; ok is false if no answer came within
// peerDialTimeout. The connection is then kept alive and idle: the server
// closes it after its IdleTimeout (2 min by default).
func probe(ctx context.Context, c net.Conn, addr string) (inst string, br *bufio.Reader, err error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(peerDialTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\nUser-Agent: baton-peer-watch\r\n\r\n"); err != nil {
		return "", nil, tlsRefused(err)
	}
	br = bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", nil, tlsRefused(err)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case err != nil:
		return "", nil, err
	case resp.StatusCode != http.StatusOK || resp.Close:
		return "", nil, fmt.Errorf("peer watch: GET /healthz answered %s", resp.Status)
	}
	return resp.Header.Get(wire.InstanceHeader), br, nil
}

// tlsRefused marks err with errHandshake if it is a TLS alert from the
// peer: with TLS 1.3 a server that wants a client certificate refuses it
// after the client's side of the handshake is done, at the first read.
func tlsRefused(err error) error {
	// A received alert is a *net.OpError "remote error" around the
	// package's own (unexported) alert type.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Errorf("%w: %w", errHandshake, err)
	}
	return err
}

// hold reads c (through br) until it closes (the peer sends nothing more)
// or ctx ends, and closes it.
func hold(ctx context.Context, c net.Conn, br *bufio.Reader) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	var b [64]byte
	for {
		if _, err := br.Read(b[:]); err != nil {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// peerGone ends the node lease of a peer whose process the peer watch
// found gone, and wakes this node's standbys parked behind it at once
// (the store's signal of the end follows).
func (n *Node) peerGone(ctx context.Context, nl baton.NodeLease) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.TTL)
	defer cancel()
	recs, err := n.store.ReleaseNode(ctx, nl, baton.ReasonCrashed)
	switch {
	case err == nil:
		n.log.Info("peer watch: ended the node lease of a peer found gone", "peer", nl.Node, "epoch", nl.Epoch, "topics", len(recs))
		n.holderEnded(nl.Node)
	case errors.Is(err, baton.ErrLeaseLost) || ctx.Err() != nil:
		// Ended already (by another node's watch, or it lapsed), or this
		// node is stopping.
		n.log.Debug("peer watch: the node lease of a peer found gone had ended", "peer", nl.Node, "epoch", nl.Epoch)
	default:
		n.log.Warn("peer watch: end the node lease of a peer found gone", "peer", nl.Node, "epoch", nl.Epoch, "err", err)
	}
}

// newPeerWatch is the node's peer watch (Config.PeerWatch).
func (n *Node) newPeerWatch() *peerWatch {
	return &peerWatch{held: make(map[peerKey]string), self: n.cfg.Node, addr: n.cfg.Addr, leases: n.session.Leases, members: n.store.Members,
		gone: n.peerGone, dial: dialPeer(n.cfg.PeerTLS), pause: sleep, now: n.cfg.Clock.Now, log: n.log}
}
