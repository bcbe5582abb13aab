package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/wire"
)

// Transport is how a Subscriber reaches the nodes.
type Transport string

const (
	// TransportSSE uses Server-Sent Events: a one-topic stream for one
	// named topic, else one multi-topic stream (GET /v1/events). It is
	// the default.
	TransportSSE Transport = "sse"
	// TransportWebSocket uses one WebSocket (/v1/ws).
	TransportWebSocket Transport = "websocket"
)

// SubscribeOptions say what a Subscriber follows.
type SubscribeOptions struct {
	// Topics are topic names and patterns ("quotes.*", "*"): at most
	// wire.MaxStreamTopics names and wire.MaxStreamPatterns patterns.
	Topics []string
	// Positions are where topics start: the seq of the last item already
	// seen (absent: 0, the beginning). Subscriber.Positions returns them
	// as they move, to persist and start from later.
	Positions map[string]uint64
	// Transport is TransportSSE ("" too) or TransportWebSocket.
	Transport Transport
	// Snapshot starts each topic at position 0 with its snapshot (as
	// WithSnapshot does for Subscribe), named or found by a pattern when
	// the connection begins: fn gets EventSnapshotStart, wire.EventSnapshot
	// events and wire.EventSnapshotEnd (Seq, the topic's position from
	// then on) for it, then its items. A topic a pattern finds later is
	// new: its items from the beginning.
	Snapshot bool
}

// Subscriber follows many topics on one connection, whatever the
// transport, and resumes every topic after its own last item on another
// node when the connection ends: fn sees each item of each topic once, in
// order, and a reset when a topic's position is no longer kept.
type Subscriber struct {
	c         *Client
	named     []string
	patterns  auth.Patterns
	transport Transport
	snap      bool // Snapshot
	// snapping holds the topics whose snapshot began on the connection;
	// Run's goroutine's.
	snapping map[string]bool

	mu   sync.Mutex
	pos  map[string]uint64 // written by Run's goroutine only
	dups uint64
}

// Subscriber returns a Subscriber of the topics of o; Run starts it.
func (c *Client) Subscriber(o SubscribeOptions) (*Subscriber, error) {
	s := &Subscriber{c: c, transport: o.Transport, pos: maps.Clone(o.Positions), snap: o.Snapshot}
	if s.pos == nil {
		s.pos = make(map[string]uint64)
	}
	switch s.transport {
	case "":
		s.transport = TransportSSE
	case TransportSSE, TransportWebSocket:
	default:
		return nil, fmt.Errorf("new subscriber: transport %q: want %s or %s", o.Transport, TransportSSE, TransportWebSocket)
	}
	for _, t := range o.Topics {
		if strings.Contains(t, "*") {
			p, err := auth.ParsePattern(t)
			if err != nil {
				return nil, fmt.Errorf("new subscriber: %w", err)
			}
			s.patterns = append(s.patterns, p)
			continue
		}
		s.named = append(s.named, t)
	}
	slices.Sort(s.named)
	s.named = slices.Compact(s.named)
	switch {
	case len(s.named)+len(s.patterns) == 0:
		return nil, errors.New("new subscriber: no topics")
	case len(s.named) > wire.MaxStreamTopics || len(s.patterns) > wire.MaxStreamPatterns:
		return nil, fmt.Errorf("new subscriber: at most %d topics and %d patterns", wire.MaxStreamTopics, wire.MaxStreamPatterns)
	}
	return s, nil
}

// Positions returns each topic's position: the seq of the last item fn
// was given (or the start position).
func (s *Subscriber) Positions() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.pos)
}

// Duplicates is the number of items dropped as already seen. A node
// resumes a multi-topic stream or a socket exactly where the subscriber
// left each topic, so it stays 0 there unless a node breaks that promise.
func (s *Subscriber) Duplicates() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

func (s *Subscriber) position(topic string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos[topic]
}

func (s *Subscriber) setPosition(topic string, p uint64, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if drop {
		delete(s.pos, topic)
		return
	}
	s.pos[topic] = p
}

// Run streams events to fn until ctx ends (nil), fn fails (its error), a
// node breaks the order (ErrGap), or a refusal that no retry mends (a 4xx:
// a topic or pattern the token may not read, too many topics). Events
// carry their Topic. A one-topic subscriber's topic deleted ends Run with
// ErrTopicDeleted; on a multi-topic one, the deletion is an event of type
// wire.EventDeleted and the other topics go on.
func (s *Subscriber) Run(ctx context.Context, fn func(Event) error) error {
	what := strings.Join(s.named, ",")
	if len(s.patterns) > 0 || len(s.named) > 1 {
		what = fmt.Sprintf("%d topics and %d patterns", len(s.named), len(s.patterns))
	}
	return s.c.resume(ctx, what, func(ctx context.Context, base string) (bool, error) {
		clear(s.snapping)
		switch {
		case s.transport == TransportWebSocket:
			return s.socket(ctx, base, fn)
		case len(s.named) == 1 && len(s.patterns) == 0:
			topic := s.named[0]
			last := s.position(topic)
			defer func() { s.setPosition(topic, last, false) }()
			snap := s.snap && last == 0
			return s.c.stream(ctx, base, topic, &last, &snap, func(ev Event) error {
				ev.Topic = topic
				err := fn(ev)
				if err == nil {
					switch ev.Type {
					case wire.EventItem:
						s.setPosition(topic, ev.Item.Seq, false)
					case wire.EventSnapshotEnd:
						s.setPosition(topic, ev.Seq, false)
					}
				}
				return err
			})
		}
		return s.multi(ctx, base, fn)
	})
}

// multi reads one multi-topic event stream.
func (s *Subscriber) multi(ctx context.Context, base string, fn func(Event) error) (bool, error) {
	q := url.Values{}
	for _, t := range s.named {
		q.Add("topic", t)
	}
	for _, p := range s.patterns {
		q.Add("topic", string(p))
	}
	if pos := s.Positions(); len(pos) > 0 {
		q.Set("positions", wire.FormatPositions(s.resumable(pos)))
	}
	if s.snap {
		q.Set("snapshot", "1") // for the topics at 0
	}
	return s.c.readStream(ctx, base+"/v1/events?"+q.Encode(), "", "subscribe", func(ev wire.Event) (bool, error) {
		switch ev.Type {
		case wire.EventItem, wire.EventReset, wire.EventDeleted, wire.EventSnapshot, wire.EventSnapshotEnd:
		default:
			return false, nil
		}
		var f wire.ServerFrame
		if err := json.Unmarshal(ev.Data, &f); err != nil {
			return false, stopError{fmt.Errorf("subscribe: bad %s event from %s: %w", ev.Type, base, err)}
		}
		f.Type = ev.Type
		return s.deliver(base, f, fn)
	})
}

// resumable keeps the positions a stream takes: named topics and topics
// a pattern selects.
func (s *Subscriber) resumable(pos map[string]uint64) map[string]uint64 {
	for t := range pos {
		if _, named := slices.BinarySearch(s.named, t); !named && !s.patterns.Match(t) {
			delete(pos, t)
		}
	}
	return pos
}

// deliver hands one event to fn, dropping an item already seen: the one
// place positions move.
func (s *Subscriber) deliver(base string, f wire.ServerFrame, fn func(Event) error) (bool, error) {
	switch f.Type {
	case wire.EventItem:
		last := s.position(f.Topic)
		if f.Seq <= last {
			s.mu.Lock()
			s.dups++
			s.mu.Unlock()
			return false, nil // already seen
		}
		if f.Seq != last+1 {
			return false, stopError{fmt.Errorf("subscribe %s: %w: got seq %d after %d from %s", f.Topic, ErrGap, f.Seq, last, base)}
		}
		if err := fn(Event{Type: wire.EventItem, Topic: f.Topic, Item: f.Item, Node: base}); err != nil {
			return false, stopError{err}
		}
		s.setPosition(f.Topic, f.Seq, false)
		return true, nil
	case wire.EventReset:
		if err := fn(Event{Type: wire.EventReset, Topic: f.Topic, Earliest: f.Earliest, Node: base}); err != nil {
			return false, stopError{err}
		}
		if f.Earliest > 0 {
			// A reset is the node's word: the topic continues there,
			// even below the position (a topic made again).
			s.setPosition(f.Topic, f.Earliest-1, false)
		}
		return true, nil
	case wire.EventDeleted:
		if err := fn(Event{Type: wire.EventDeleted, Topic: f.Topic, Node: base}); err != nil {
			return false, stopError{err}
		}
		s.setPosition(f.Topic, 0, true)
		return true, nil
	case wire.EventSnapshot, wire.EventSnapshotEnd:
		return s.snapshotEvent(base, f, fn)
	}
	return false, nil
}

// snapshotEvent hands fn a snapshot or snapshot_end event of a stream of
// many topics (or a socket), EventSnapshotStart before a topic's first on
// the connection; snapshot_end moves the topic's position to its seq. A
// snapshot is progress once whole.
func (s *Subscriber) snapshotEvent(base string, f wire.ServerFrame, fn func(Event) error) (bool, error) {
	_, named := slices.BinarySearch(s.named, f.Topic)
	if !s.snap || !named && !s.patterns.Match(f.Topic) || s.position(f.Topic) != 0 {
		return false, stopError{fmt.Errorf("subscribe: %s sent a %s event of %q, not a topic whose snapshot is to come", base, f.Type, f.Topic)}
	}
	if s.snapping == nil {
		s.snapping = make(map[string]bool)
	}
	if !s.snapping[f.Topic] {
		s.snapping[f.Topic] = true
		if err := fn(Event{Type: EventSnapshotStart, Topic: f.Topic, Node: base}); err != nil {
			return false, stopError{err}
		}
	}
	if f.Type == wire.EventSnapshot {
		if err := fn(Event{Type: wire.EventSnapshot, Topic: f.Topic, Item: f.Item, Node: base}); err != nil {
			return false, stopError{err}
		}
		return false, nil
	}
	if err := fn(Event{Type: wire.EventSnapshotEnd, Topic: f.Topic, Seq: f.Seq, Node: base}); err != nil {
		return false, stopError{err}
	}
	delete(s.snapping, f.Topic)
	s.setPosition(f.Topic, f.Seq, false)
	return true, nil
}
