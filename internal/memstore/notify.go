package memstore

import (
	"sync"

	"github.com/baton-pub/baton"
)

type sub struct {
	d       *data
	topic   string
	signals baton.Signal
	c       chan struct{}
	once    sync.Once
}

func (s *sub) C() <-chan struct{} { return s.c }

func (s *sub) Close() {
	s.once.Do(func() {
		s.d.mu.Lock()
		defer s.d.mu.Unlock()
		delete(s.d.subs, s)
	})
}

// Subscribe returns a coalescing subscription to signals of topic ("" for
// SignalTopic). On a closed handle it never fires.
func (s *Store) Subscribe(name string, signals baton.Signal) baton.Subscription {
	sb := &sub{d: s.d, topic: name, signals: signals, c: make(chan struct{}, 1)}
	if s.closed.Load() {
		return sb
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.subs[sb] = struct{}{}
	return sb
}

// notify wakes the subscriptions that want sig on topic, and those of ""
// for SignalTopic. Callers hold mu; the sends never block.
func (d *data) notify(topic string, sig baton.Signal) {
	if sig == 0 {
		return
	}
	for sb := range d.subs {
		match := sb.topic == topic && sb.signals&sig != 0 ||
			sb.topic == "" && sig&baton.SignalTopic != 0 && sb.signals&baton.SignalTopic != 0
		if !match {
			continue
		}
		select {
		case sb.c <- struct{}{}:
		default: // a wake-up is pending: coalesce
		}
	}
}
