package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/testcerts"
	"github.com/baton-pub/baton/wire"
)

// fakePeer is a peer's HTTP server answering GET /healthz as a node does,
// with its instance; idle, when set, closes kept-alive connections after
// that long (a node's IdleTimeout).
type fakePeer struct {
	ln       net.Listener
	srv      *http.Server
	accepted atomic.Int64
	open     atomic.Int64 // connections not closed
	idle     atomic.Int64 // connections that answered and wait, kept alive
}

func newFakePeer(t *testing.T, idle time.Duration) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return servePeer(t, ln, "one", idle)
}

// servePeer is newFakePeer on ln, answering as instance.
func servePeer(t *testing.T, ln net.Listener, instance string, idle time.Duration) *fakePeer {
	t.Helper()
	p := &fakePeer{ln: ln}
	p.srv = &http.Server{IdleTimeout: idle,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(wire.InstanceHeader, instance)
			w.Write([]byte(`{"status":"ok"}`))
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				p.accepted.Add(1)
				p.open.Add(1)
			case http.StateIdle:
				p.idle.Add(1)
			case http.StateClosed, http.StateHijacked:
				p.open.Add(-1)
			}
		}}
	go p.srv.Serve(ln)
	t.Cleanup(p.die)
	return p
}

// waitHeld waits until a watch's connection has its answer and is kept.
func (p *fakePeer) waitHeld(t *testing.T) {
	t.Helper()
	poll.Until(t, 10*time.Second, "the watch's connection held", func() error {
		if p.idle.Load() == 0 {
			return errors.New("none yet")
		}
		return nil
	})
}

// die is the process gone: its listener and every connection closed.
func (p *fakePeer) die() { p.srv.Close() }

type watchRun struct {
	w      *peerWatch
	pauses chan time.Duration // every pause the watch asked for
	gone   chan baton.NodeLease
	dials  atomic.Int64
	live   atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
	// onGone, if set, runs in gone with its context, before gone reports.
	onGone atomic.Pointer[func(context.Context)]
}

// startWatch runs a peer watch of node "b" (epoch 7) at addr, as node "a".
func startWatch(t *testing.T, addr string) *watchRun {
	t.Helper()
	return startWatchTLS(t, addr, false)
}

func startWatchTLS(t *testing.T, addr string, tlsOn bool) *watchRun {
	t.Helper()
	r := &watchRun{gone: make(chan baton.NodeLease, 4), done: make(chan struct{}), pauses: make(chan time.Duration, 1000)}
	r.live.Store(true)
	dial := dialPeer(tlsOn)
	r.w = &peerWatch{self: "a", addr: "127.0.0.1:1",
		leases: func() []baton.NodeLease {
			rem := time.Second
			if !r.live.Load() {
				rem = 0
			}
			return []baton.NodeLease{{Node: "a", Epoch: 3, Remaining: time.Second}, {Node: "b", Epoch: 7, Remaining: rem}}
		},
		members: func(context.Context) ([]baton.Member, error) {
			return []baton.Member{{Node: "a", Addr: "127.0.0.1:1"}, {Node: "b", Addr: addr}}, nil
		},
		gone: func(ctx context.Context, nl baton.NodeLease) {
			if f := r.onGone.Load(); f != nil {
				(*f)(ctx)
			}
			r.gone <- nl
		},
		dial: func(ctx context.Context, a string) (net.Conn, error) {
			r.dials.Add(1)
			return dial(ctx, a)
		},
		pause: func(ctx context.Context, d time.Duration) {
			select {
			case r.pauses <- d:
			default:
			}
			sleep(ctx, d)
		},
		now: time.Now, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); r.w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *watchRun) noneGone(t *testing.T) {
	t.Helper()
	select {
	case nl := <-r.gone:
		t.Fatalf("peer %s epoch %d ended, though its process is there", nl.Node, nl.Epoch)
	default:
	}
}

// wantGone waits for the watch to end peer b's node lease, epoch 7.
func (r *watchRun) wantGone(t *testing.T, what string) {
	t.Helper()
	select {
	case nl := <-r.gone:
		if nl.Node != "b" || nl.Epoch != 7 {
			t.Fatalf("ended %+v, want b epoch 7", nl)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(what + " was not ended")
	}
}

// TestPeerWatchEndsGone: a peer whose connection closes and whose address
// then refuses connections is gone: its node lease (that epoch) is ended.
func TestPeerWatchEndsGone(t *testing.T) {
	p := newFakePeer(t, 0)
	r := startWatch(t, p.ln.Addr().String())
	p.waitHeld(t)
	poll.Until(t, 10*time.Second, "b listed as watched", func() error {
		if got := r.w.watching(); !slices.Equal(got, []string{"b"}) {
			return fmt.Errorf("watching %v", got)
		}
		return nil
	})
	r.noneGone(t)
	p.die()
	r.wantGone(t, "the gone peer's node lease")
	poll.Until(t, 10*time.Second, "nothing listed as watched", func() error {
		if got := r.w.watching(); len(got) > 0 {
			return fmt.Errorf("watching %v", got)
		}
		return nil
	})
}

// TestPeerWatchEndOutlivesTheWatch: ending a gone peer's node lease is not
// cut short when its first write makes the lease not live and the next
// scan stops the watch that found it gone. Cut, the end of the copies of
// the lease on Redis Cluster failed ("context canceled") and the peer's
// topics stayed held until the copies lapsed, with no signal then.
func TestPeerWatchEndOutlivesTheWatch(t *testing.T) {
	p := newFakePeer(t, 0)
	r := startWatch(t, p.ln.Addr().String())
	p.waitHeld(t)
	errc := make(chan error, 1)
	f := func(ctx context.Context) {
		r.live.Store(false) // the end's first write: the lease is not live
		poll.True(t, 10*time.Second, "the scan stopping the watch", func() bool {
			r.w.mu.Lock()
			defer r.w.mu.Unlock()
			return len(r.w.watches) == 0
		})
		errc <- ctx.Err()
	}
	r.onGone.Store(&f)
	p.die()
	r.wantGone(t, "the gone peer's node lease")
	if err := <-errc; err != nil {
		t.Errorf("the end's context after the watch stopped: %v, want still live", err)
	}
}

// tlsListen listens with TLS on 127.0.0.1, with a certificate of a fresh CA.
func tlsListen(t *testing.T, auth tls.ClientAuthType) net.Listener {
	t.Helper()
	ca, err := testcerts.NewCA(t.TempDir(), "peers")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Issue("node", testcerts.Server)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: auth})
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestPeerWatchTLS: with TLS, the watch completes the handshake (the peer
// counts a connection only then), and a gone peer is ended as over TCP.
func TestPeerWatchTLS(t *testing.T) {
	ln := tlsListen(t, tls.NoClientCert)
	p := servePeer(t, ln, "one", 0)
	r := startWatchTLS(t, ln.Addr().String(), true)
	p.waitHeld(t)
	p.die()
	r.wantGone(t, "the gone peer's node lease")
}

// TestPeerWatchRestarted: a peer restarted on the same address, before the
// watch dialled again, answers as another process: the one watched is gone.
func TestPeerWatchRestarted(t *testing.T) {
	p := newFakePeer(t, 0)
	addr := p.ln.Addr().String()
	r := startWatch(t, addr)
	p.waitHeld(t)
	// Stop accepting first, then close the held connection, so that the
	// watch's next dial finds the new process.
	p.ln.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	servePeer(t, ln, "two", 0)
	p.die()
	r.wantGone(t, "the restarted peer's old node lease")
}

// TestPeerWatchClientCertRequired: a peer whose TLS wants a client
// certificate refuses the watch's handshake: nothing is concluded, and the
// watch waits a long while before it tries again (the peer logs each
// failed handshake).
func TestPeerWatchClientCertRequired(t *testing.T) {
	ln := tlsListen(t, tls.RequireAnyClientCert)
	servePeer(t, ln, "one", 0)
	r := startWatchTLS(t, ln.Addr().String(), true)
	select {
	case d := <-r.pauses:
		if d != peerHandshakeRetry {
			t.Fatalf("paused %v after a refused handshake, want %v", d, peerHandshakeRetry)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not pause after a refused handshake")
	}
	r.noneGone(t)
}

// TestPeerWatchKeepsLive: a live peer that closes the watch's connections
// (as an HTTP server does after its IdleTimeout) is dialled again, and
// answers as the same process: never ended.
func TestPeerWatchKeepsLive(t *testing.T) {
	p := newFakePeer(t, 20*time.Millisecond)
	r := startWatch(t, p.ln.Addr().String())
	poll.Until(t, 10*time.Second, "three connections", func() error {
		if n := p.accepted.Load(); n < 3 {
			return errors.New("fewer")
		}
		return nil
	})
	r.noneGone(t)
}

// TestPeerWatchNeverHeld: an address that refused from the first dial
// proves nothing (a wrong address, a firewall): nothing is ended.
func TestPeerWatchNeverHeld(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := startWatch(t, addr)
	poll.Until(t, 10*time.Second, "two dials", func() error {
		if r.dials.Load() < 2 {
			return errors.New("fewer")
		}
		return nil
	})
	r.noneGone(t)
}

// TestPeerWatchStopsAtLapse: once the peer's node lease is not live any
// more (it lapsed, or ended), its watch lets its connection go, and a
// later death of the process ends nothing (the store's expiry took over).
func TestPeerWatchStopsAtLapse(t *testing.T) {
	p := newFakePeer(t, 0)
	r := startWatch(t, p.ln.Addr().String())
	p.waitHeld(t)
	r.live.Store(false)
	poll.Until(t, 10*time.Second, "the connection let go", func() error {
		if n := p.open.Load(); n > 0 {
			return errors.New("still held")
		}
		return nil
	})
	p.die()
	r.cancel()
	<-r.done
	r.noneGone(t)
}

func TestWatchable(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "node-2.internal:8080": true, "[::1]:8080": true,
		"[::]:8080": false, "0.0.0.0:8080": false, ":8080": false, "127.0.0.1:0": false, "nonsense": false,
	} {
		if got := watchable(addr); got != want {
			t.Errorf("watchable(%q) = %v, want %v", addr, got, want)
		}
	}
}
