// Package workload drives real Baton nodes the way users do: sources that
// publish with message ids and retries, terminals that subscribe and resume.
// Everything they observe goes into a checker.History. The demo, chaos and
// the integration tests use it.
package workload

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/wire"
)

// Source publishes one update at a time at a steady rate, waiting for each
// acknowledgement (retrying, with the same msg id, across nodes).
type Source struct {
	Name, Topic string
	acked       atomic.Int64
	retries     atomic.Int64
	resent      atomic.Int64
	lostAcks    atomic.Int64
	mu          sync.Mutex
	err         error
	cancel      context.CancelFunc
	done        chan struct{}
}

// StartSource starts a source publishing rate items/s to topic, one
// update per request.
func StartSource(ctx context.Context, name, topic string, nodes []string, rate int, h *checker.History) (*Source, error) {
	return StartSourceWith(ctx, name, topic, nodes, h, SourceOptions{Rate: rate})
}

// SourceOptions tune a source started with StartSourceWith.
type SourceOptions struct {
	// Rate is the number of requests per second.
	Rate int
	// MaxBatch: each request carries 1 to MaxBatch updates, appended as
	// one atomic batch (default 1).
	MaxBatch int
	// Resend is the probability that an acknowledged request is sent
	// again, as if its acknowledgement had been lost: the same msg ids
	// must get the same seqs (the checker verifies it).
	Resend float64
	// Seed seeds the source's choices (batch sizes, resends).
	Seed uint64
	// RequestTimeout: see client.Options (default 1s).
	RequestTimeout time.Duration
	// Access is how the source reaches nodes that serve TLS or check tokens.
	Access Access
	// Topics, if set, are the topics the source publishes to instead of
	// its one topic: each request to one of them, to each in order first
	// (so that every topic gets an item early), then to one drawn at
	// random (Seed).
	Topics []string
}

// Access is how sources and terminals reach the nodes: the TLS
// configuration for https:// nodes (a CA to trust, a client certificate)
// and a bearer token with the source of fresh ones (client.Options), all
// optional.
type Access struct {
	TLS         *tls.Config
	Token       string
	TokenSource func(context.Context) (string, error)
}

// StartSourceWith starts a source with options. Every update it sends has
// a msg id NAME-N; the client retries a request (same msg ids, any node)
// until it is acknowledged or the source stops.
func StartSourceWith(ctx context.Context, name, topic string, nodes []string, h *checker.History, o SourceOptions) (*Source, error) {
	s := &Source{Name: name, Topic: topic, done: make(chan struct{})}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = time.Second
	}
	cl, err := client.New(append([]string(nil), nodes...), client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		RequestTimeout: o.RequestTimeout, OnRetry: func(string, error) { s.retries.Add(1) }, TLS: o.Access.TLS, Token: o.Access.Token, TokenSource: o.Access.TokenSource})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x736f75726365)) // "source"
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second / time.Duration(max(o.Rate, 1)))
		defer tick.Stop()
		next := 0
		for req := 0; ; req++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if n := len(o.Topics); n > 0 {
				if req < n {
					topic = o.Topics[req]
				} else {
					topic = o.Topics[rng.IntN(n)]
				}
			}
			us := make([]baton.Update, 1+rng.IntN(max(o.MaxBatch, 1)))
			for j := range us {
				us[j] = baton.Update{ID: fmt.Sprintf("%s.k%d", name, next%10), Value: json.RawMessage(`{"n":` + strconv.Itoa(next) + `}`),
					MsgID: fmt.Sprintf("%s-%d", name, next)}
				h.Sent(topic, us[j].MsgID)
				next++
			}
			resend := rng.Float64() < o.Resend
			for attempt := 0; attempt < 2; attempt++ {
				rs, err := cl.Publish(ctx, topic, us)
				if err != nil {
					if ctx.Err() == nil {
						s.mu.Lock()
						s.err = err
						s.mu.Unlock()
					}
					return
				}
				now := time.Now()
				for j, r := range rs {
					h.Acked(checker.Ack{Source: name, Topic: topic, MsgID: us[j].MsgID, Seq: r.Seq, Hash: r.Hash, At: now})
				}
				if attempt == 0 {
					s.acked.Add(int64(len(rs)))
					for _, r := range rs {
						if r.Duplicate {
							// The client retried a request whose first
							// answer was lost, and the store had it.
							s.lostAcks.Add(1)
						}
					}
				} else {
					s.resent.Add(int64(len(rs)))
				}
				if !resend {
					break
				}
			}
		}
	}()
	return s, nil
}

// LostAcks counts updates acknowledged as duplicates on their first
// request: a retry by the client after the answer to an earlier attempt was
// lost (the node died or timed out after the append was durable).
func (s *Source) LostAcks() int { return int(s.lostAcks.Load()) }

// Resent counts updates sent again after their acknowledgement (Resend).
func (s *Source) Resent() int { return int(s.resent.Load()) }

// Acked counts acknowledged updates.
func (s *Source) Acked() int { return int(s.acked.Load()) }

// Retries counts failed attempts that were retried.
func (s *Source) Retries() int { return int(s.retries.Load()) }

// Stop stops the source and waits; an update in flight may be left
// unacknowledged (it may still be published: that is not a loss).
func (s *Source) Stop() error {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Terminal subscribes to a topic, first on nodes[0], and records what it
// receives. It may be moved to other nodes (Move) and slowed down
// (SetSlow); it always resumes from the last seq it received.
type Terminal struct {
	Name, Topic string
	n           atomic.Int64
	last        atomic.Uint64
	slow        atomic.Int64 // time.Duration slept after each item
	streams     atomic.Int64 // event-stream requests made
	moves       atomic.Int64
	resets      atomic.Int64
	node        atomic.Value // string: base URL of the node of the last event

	h      *checker.History
	o      TerminalOptions
	parent context.Context

	runMu  sync.Mutex // serialises Move and Stop
	mu     sync.Mutex // guards err, cancel, done
	err    error
	cancel context.CancelFunc
	done   chan struct{}
	// OnItem, if set before start, is called for every item (tests).
	onItem func(wire.Item, time.Time)
}

// TerminalOptions tune a terminal.
type TerminalOptions struct {
	After  uint64
	OnItem func(wire.Item, time.Time)
	// Slow, if set, is slept after each item: a terminal that reads too
	// slowly. SetSlow changes it.
	Slow time.Duration
	// StreamIdle: see client.Options. Nodes run with a short
	// --sse-heartbeat in tests, so a paused node is left quickly.
	StreamIdle time.Duration
	// Access is how the terminal reaches nodes that serve TLS or check
	// tokens.
	Access Access
	// ReadBuffer, if positive, sets the socket receive buffer (SO_RCVBUF)
	// of the terminal's connections: with a small one, a slow terminal
	// fills the server's send buffer quickly and the server's write
	// deadline, not the kernel, decides when it is cut off.
	ReadBuffer int
}

// StartTerminal starts a terminal.
func StartTerminal(ctx context.Context, name, topic string, nodes []string, h *checker.History, o TerminalOptions) (*Terminal, error) {
	t := &Terminal{Name: name, Topic: topic, h: h, o: o, parent: ctx, onItem: o.OnItem}
	t.slow.Store(int64(o.Slow))
	t.last.Store(o.After)
	t.node.Store("")
	h.TerminalStarted(name, topic, o.After)
	if err := t.start(nodes); err != nil {
		return nil, err
	}
	return t, nil
}

// start subscribes after the last seq received, trying nodes in order.
func (t *Terminal) start(nodes []string) error {
	// client.pick starts at index 1: rotate so nodes[0] is tried first.
	order := make([]string, len(nodes))
	for i := range nodes {
		order[i] = nodes[(i+len(nodes)-1)%len(nodes)]
	}
	cl, err := client.New(order, client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		StreamIdle: t.o.StreamIdle, HTTP: t.httpClient(), Token: t.o.Access.Token, TokenSource: t.o.Access.TokenSource})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(t.parent)
	done := make(chan struct{})
	t.mu.Lock()
	t.cancel, t.done = cancel, done
	t.mu.Unlock()
	name, topic, h := t.Name, t.Topic, t.h
	go func() {
		defer close(done)
		err := cl.Subscribe(ctx, topic, t.last.Load(), func(e client.Event) error {
			now := time.Now()
			t.node.Store(e.Node)
			if e.Type == wire.EventReset {
				t.resets.Add(1)
				h.ResetSeen(checker.Reset{Terminal: name, Topic: topic, Earliest: e.Earliest})
				return nil
			}
			d := e.Item
			h.Delivered(checker.Delivery{Terminal: name, Topic: topic, Item: d, At: now})
			t.n.Add(1)
			t.last.Store(d.Seq)
			if t.onItem != nil {
				t.onItem(d, now)
			}
			if s := time.Duration(t.slow.Load()); s > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(s):
				}
			}
			return nil
		})
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
	}()
	return nil
}

// httpClient counts the terminal's event-stream requests and applies
// ReadBuffer and the TLS configuration.
func (t *Terminal) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = t.o.Access.TLS
	if n := t.o.ReadBuffer; n > 0 {
		d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = setRcvBuf(fd, n)
			}); err != nil {
				return err
			}
			return serr
		}}
		tr.DialContext = d.DialContext
	}
	return &http.Client{Transport: countingTransport{rt: tr, n: &t.streams}}
}

type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/events") {
		c.n.Add(1)
	}
	return c.rt.RoundTrip(r)
}

// Move disconnects the terminal and subscribes again, trying nodes in
// order, after the last seq it received: a user moving to another server.
// A terminal that ended on an error is not restarted; its error is kept.
func (t *Terminal) Move(nodes []string) error {
	t.runMu.Lock()
	defer t.runMu.Unlock()
	t.mu.Lock()
	cancel, done, err := t.cancel, t.done, t.err
	t.mu.Unlock()
	select {
	case <-done:
		if err != nil {
			return err
		}
		if t.parent.Err() != nil {
			return t.parent.Err()
		}
	default:
	}
	cancel()
	<-done
	t.mu.Lock()
	err = t.err
	t.mu.Unlock()
	if err != nil {
		return err
	}
	t.moves.Add(1)
	return t.start(nodes)
}

// SetSlow sets how long the terminal sleeps after each item (0: not slow).
func (t *Terminal) SetSlow(d time.Duration) { t.slow.Store(int64(d)) }

// Received counts items received.
func (t *Terminal) Received() int { return int(t.n.Load()) }

// Last is the last seq received.
func (t *Terminal) Last() uint64 { return t.last.Load() }

// Streams counts the event-stream requests made: the first, and one per
// resume after a disconnect or a move.
func (t *Terminal) Streams() int { return int(t.streams.Load()) }

// Moves counts the moves.
func (t *Terminal) Moves() int { return int(t.moves.Load()) }

// Node is the base URL of the node that sent the last event ("" before any).
func (t *Terminal) Node() string { return t.node.Load().(string) }

// Stop stops the terminal and returns its error, if it ended on one.
func (t *Terminal) Stop() error {
	t.runMu.Lock()
	defer t.runMu.Unlock()
	t.mu.Lock()
	cancel, done := t.cancel, t.done
	t.mu.Unlock()
	cancel()
	<-done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Err returns the error the terminal ended on, if it has ended.
func (t *Terminal) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
