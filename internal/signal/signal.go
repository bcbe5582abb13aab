// Package signal fans store change signals out to coalescing subscriptions.
// Engines use it to implement baton.Notifier.
package signal

import (
	"sync"

	"github.com/baton-pub/baton"
)

// Hub holds the subscriptions of one store handle.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[*sub]struct{} // topic -> subscriptions
	closed bool
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: make(map[string]map[*sub]struct{})} }

type sub struct {
	h       *Hub
	topic   string
	signals baton.Signal
	c       chan struct{}
	once    sync.Once
}

func (s *sub) C() <-chan struct{} { return s.c }

func (s *sub) Close() {
	s.once.Do(func() {
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

func (s *sub) wake() {
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

// Notify wakes the subscriptions of topic that want any of signals.
// SignalTopic also wakes the subscriptions of the empty topic.
func (h *Hub) Notify(topic string, signals baton.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[topic] {
		if s.signals&signals != 0 {
			s.wake()
		}
	}
	if signals&baton.SignalTopic != 0 && topic != "" {
		for s := range h.subs[""] {
			if s.signals&baton.SignalTopic != 0 {
				s.wake()
			}
		}
	}
}

// NotifyAll wakes every subscription, e.g. after a reconnect, when changes
// may have been missed.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for s := range m {
			s.wake()
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
}
