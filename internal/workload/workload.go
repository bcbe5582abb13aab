// Package workload drives real Baton nodes the way users do: sources that
// publish with message ids and retries, terminals that subscribe and resume.
// Everything they observe goes into a checker.History. The demo, chaos and
// the integration tests use it.
package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/client"
)

// Source publishes one update at a time at a steady rate, waiting for each
// acknowledgement (retrying, with the same msg id, across nodes).
type Source struct {
	Name, Topic string
	acked       atomic.Int64
	retries     atomic.Int64
	mu          sync.Mutex
	err         error
	cancel      context.CancelFunc
	done        chan struct{}
}

// StartSource starts a source publishing rate items/s to topic.
func StartSource(ctx context.Context, name, topic string, nodes []string, rate int, h *checker.History) (*Source, error) {
	s := &Source{Name: name, Topic: topic, done: make(chan struct{})}
	cl, err := client.New(append([]string(nil), nodes...), client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		RequestTimeout: time.Second, OnRetry: func(string, error) { s.retries.Add(1) }})
	if err != nil {
		return nil, err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			u := baton.Update{ID: fmt.Sprintf("%s.k%d", name, i%10), Value: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`),
				MsgID: fmt.Sprintf("%s-%d", name, i)}
			h.Sent(topic, u.MsgID)
			rs, err := cl.Publish(ctx, topic, []baton.Update{u})
			if err != nil {
				if ctx.Err() == nil {
					s.mu.Lock()
					s.err = err
					s.mu.Unlock()
				}
				return
			}
			h.Acked(checker.Ack{Source: name, Topic: topic, MsgID: u.MsgID, Seq: rs[0].Seq, Hash: rs[0].Hash, At: time.Now()})
			s.acked.Add(1)
		}
	}()
	return s, nil
}

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
// receives.
type Terminal struct {
	Name, Topic string
	n           atomic.Int64
	last        atomic.Uint64
	mu          sync.Mutex
	err         error
	cancel      context.CancelFunc
	done        chan struct{}
	// OnItem, if set before start, is called for every item (tests).
	onItem func(client.Delivered, time.Time)
}

// TerminalOptions tune a terminal.
type TerminalOptions struct {
	After  uint64
	OnItem func(client.Delivered, time.Time)
	// Slow, if set, is slept after each item: a terminal that reads too
	// slowly.
	Slow time.Duration
	// StreamIdle: see client.Options. Nodes run with a short
	// --sse-heartbeat in tests, so a paused node is left quickly.
	StreamIdle time.Duration
}

// StartTerminal starts a terminal.
func StartTerminal(ctx context.Context, name, topic string, nodes []string, h *checker.History, o TerminalOptions) (*Terminal, error) {
	t := &Terminal{Name: name, Topic: topic, done: make(chan struct{}), onItem: o.OnItem}
	// client.pick starts at index 1: rotate so nodes[0] is tried first.
	order := make([]string, len(nodes))
	for i := range nodes {
		order[i] = nodes[(i+len(nodes)-1)%len(nodes)]
	}
	cl, err := client.New(order, client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		StreamIdle: o.StreamIdle})
	if err != nil {
		return nil, err
	}
	ctx, t.cancel = context.WithCancel(ctx)
	go func() {
		defer close(t.done)
		err := cl.Subscribe(ctx, topic, o.After, func(e client.Event) error {
			now := time.Now()
			if e.Type == "reset" {
				h.ResetSeen(checker.Reset{Terminal: name, Topic: topic, Earliest: e.Earliest})
				return nil
			}
			d := e.Item
			h.Delivered(checker.Delivery{Terminal: name, Topic: topic, Seq: d.Seq, ID: d.ID, Value: d.Value, MsgID: d.MsgID,
				Hash: d.Hash, Epoch: d.Epoch, Publisher: d.Publisher, At: now})
			t.n.Add(1)
			t.last.Store(d.Seq)
			if t.onItem != nil {
				t.onItem(d, now)
			}
			if o.Slow > 0 {
				time.Sleep(o.Slow)
			}
			return nil
		})
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
	}()
	return t, nil
}

// Received counts items received.
func (t *Terminal) Received() int { return int(t.n.Load()) }

// Last is the last seq received.
func (t *Terminal) Last() uint64 { return t.last.Load() }

// Stop stops the terminal and returns its error, if it ended on one.
func (t *Terminal) Stop() error {
	t.cancel()
	<-t.done
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
