// Package signal fans store change signals out to coalescing subscriptions.
// Engines use it to implement baton.Notifier.
package signal

import (
	"sync"
	"sync/atomic"

	"github.com/baton-pub/baton"
)

// Hub holds the subscriptions of one store handle.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[*sub]struct{} // topic -> subscriptions
	closed bool

	// The callbacks of SubscribeFunc run on one goroutine, started with
	// the first: due holds the subscriptions woken since it last looked,
	// each once (sub.pending), and kick wakes it.
	due  []*sub
	kick chan struct{}
	quit chan struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: make(map[string]map[*sub]struct{})} }

type sub struct {
	h       *Hub
	topic   string
	signals baton.Signal
	c       chan struct{}
	once    sync.Once

	// A SubscribeFunc subscription: fn instead of c.
	fn      func(baton.Signal)
	pending bool         // under h.mu: in h.due
	got     baton.Signal // under h.mu: the signals raised since fn's last call
	closed  atomic.Bool
}

func (s *sub) C() <-chan struct{} { return s.c }

func (s *sub) Close() {
	s.once.Do(func() {
		s.closed.Store(true)
		s.h.mu.Lock()
		defer s.h.mu.Unlock()
		if m := s.h.subs[s.topic]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(s.h.subs, s.topic)
			}
		}
	})
}

// wake is called with h.mu held, with the signals raised.
func (s *sub) wake(signals baton.Signal) {
	if s.fn != nil {
		s.got |= signals & s.signals
		if !s.pending {
			s.pending = true
			s.h.due = append(s.h.due, s)
			select {
			case s.h.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	select {
	case s.c <- struct{}{}:
	default: // a wake-up is already pending: coalesce
	}
}

// Subscribe registers a subscription for topic and signals.
func (h *Hub) Subscribe(topic string, signals baton.Signal) baton.Subscription {
	s := &sub{h: h, topic: topic, signals: signals, c: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[topic]
	if m == nil {
		m = make(map[*sub]struct{})
		h.subs[topic] = m
	}
	m[s] = struct{}{}
	return s
}

// SubscribeFunc registers a subscription for topic and signals that calls
// fn instead of filling a channel: a component waiting on thousands of
// topics needs no goroutine per topic (docs/design.md, node leases). fn is
// given the signals raised since its last call. fn
// runs on the hub's one callback goroutine, never under a lock of the
// store's, once after one or more matching changes (coalesced, as C is).
// It is not called once Close has returned, except that a call already
// under way may finish after it. fn must not block.
func (h *Hub) SubscribeFunc(topic string, signals baton.Signal, fn func(baton.Signal)) baton.Subscription {
	s := &sub{h: h, topic: topic, signals: signals, fn: fn}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kick == nil {
		h.kick, h.quit = make(chan struct{}, 1), make(chan struct{})
		if !h.closed {
			go h.callbacks(h.kick, h.quit)
		}
	}
	m := h.subs[topic]
	if m == nil {
		m = make(map[*sub]struct{})
		h.subs[topic] = m
	}
	m[s] = struct{}{}
	return s
}

// callbacks calls the functions of the woken SubscribeFunc subscriptions,
// in the order they were woken, until the hub closes.
func (h *Hub) callbacks(kick, quit <-chan struct{}) {
	for {
		select {
		case <-kick:
		case <-quit:
			return
		}
		h.mu.Lock()
		due := h.due
		h.due = nil
		got := make([]baton.Signal, len(due))
		for i, s := range due {
			s.pending = false
			got[i], s.got = s.got, 0
		}
		h.mu.Unlock()
		for i, s := range due {
			if !s.closed.Load() {
				s.fn(got[i])
			}
		}
	}
}

// Notify wakes the subscriptions of topic that want any of signals.
// SignalTopic also wakes the subscriptions of the empty topic.
func (h *Hub) Notify(topic string, signals baton.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[topic] {
		if s.signals&signals != 0 {
			s.wake(signals)
		}
	}
	if signals&baton.SignalTopic != 0 && topic != "" {
		for s := range h.subs[""] {
			if s.signals&baton.SignalTopic != 0 {
				s.wake(baton.SignalTopic)
			}
		}
	}
}

// NotifyAll wakes every subscription, e.g. after a reconnect, when changes
// may have been missed: with every signal but SignalFreed, a hint that
// nothing here can vouch for.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for s := range m {
			s.wake(^baton.SignalFreed)
		}
	}
}

// Watched lists the topics that have subscriptions.
func (h *Hub) Watched() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.subs))
	for t := range h.subs {
		out = append(out, t)
	}
	return out
}

// Close drops every subscription.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.subs = make(map[string]map[*sub]struct{})
	h.due = nil
	if h.quit != nil {
		close(h.quit)
		h.quit = nil
	}
}
