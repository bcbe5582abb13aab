package http

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// multiSource is the source of a stream of many topics: a multi-topic
// event stream (multi.go) or a WebSocket (ws.go). It holds one hub
// terminal per topic, so each topic's items come from the feed the node
// shares among all its terminals of that topic, and each topic keeps a
// one-topic stream's rules (order, catch-up, reset, slow terminal).
//
// Goroutines: the stream's serving goroutine (stream.go) is the consumer:
// it alone calls frames, reads the terminals and owns topics and id.
// Others ask it for changes through ops under mu: the WebSocket reader
// (subscribe, unsubscribe) and the hub's topic watcher (topics a pattern
// finds). A terminal's OnReady (hub lock order feed.mu → Terminal.mu)
// takes mu, then calls the stream's own OnReady (streamer.mu): the lock
// order is feed.mu → Terminal.mu → multiSource.mu → streamer.mu, and
// nothing calls into the hub while holding mu.
type multiSource struct {
	hub *hub.Hub
	ws  bool // frames are WebSocket frames, not Server-Sent Events
	// ctx is the terminals' context: the stream's.
	ctx context.Context

	// The consumer's; topics is written under mu too, for end.
	topics smallMap[*topicTerm]
	id     *wire.StreamID // the Last-Event-ID (SSE only)
	arena  []byte         // this turn's frame bytes; see alloc

	mu    sync.Mutex
	ready []*topicTerm // terminals that may have events, each once
	ops   []sourceOp
	// members: topics in topics, in ops to add, or reserved (true) while
	// their snapshot is written (reserve).
	members  smallMap[bool]
	patterns []patternSub // active patterns
	watch    *hub.TopicWatch
	onReady  func()
	// wake is made by Ready, with a token in it: a stream on the pool
	// never waits on it, and one that does looks at frames again first.
	wake  chan struct{} // capacity 1
	ended bool
}

// topicTerm is one topic of a multiSource.
type topicTerm struct {
	topic string
	term  *hub.Terminal
	named bool   // subscribed by name, not only found by a pattern
	from  string // the pattern that found it, if not named
	// prefix is what comes before an item's fields (`"id: ` is not in
	// it), made at the topic's first item: an idle topic holds none.
	prefix []byte
	queued bool // on multiSource.ready; guarded by multiSource.mu
}

// patternSub is an active pattern with the positions its topics start at.
type patternSub struct {
	p   auth.Pattern
	pos map[string]uint64
	ref string
}

type opKind uint8

const (
	opAdd          opKind = iota + 1 // a terminal subscribed (term set) or to subscribe
	opRemove                         // unsubscribe a topic or pattern
	opDropped                        // a topic found over the stream's limit
	opSubscribed                     // a pattern is active (WebSocket answer)
	opUnsubscribed                   // unsubscribed (WebSocket answer)
)

type sourceOp struct {
	kind  opKind
	topic string
	ref   string
	term  *hub.Terminal
	named bool
	from  string
	after uint64
}

// maxPendingDropped bounds the dropped notices waiting in ops.
const maxPendingDropped = 64

func newMultiSource(h *hub.Hub, ctx context.Context, ws bool) *multiSource {
	return &multiSource{hub: h, ctx: ctx, ws: ws}
}

// count is the number of topics the stream follows or is about to.
func (m *multiSource) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members.len()
}

// add hands the source a subscribed terminal (named: by its name, and on
// a WebSocket the consumer answers "subscribed" before its items; else
// found by the pattern from). It reports false, having closed term, if
// the source ended or the topic is already followed (unless reserved,
// and the caller is the one that reserved it).
func (m *multiSource) add(term *hub.Terminal, named bool, from, ref string, reserved bool) bool {
	m.mu.Lock()
	r, dup := m.members.get(term.Topic())
	if m.ended || dup && !(reserved && r) {
		m.mu.Unlock()
		term.Close()
		return false
	}
	m.members.set(term.Topic(), false)
	m.ops = append(m.ops, sourceOp{kind: opAdd, topic: term.Topic(), term: term, named: named, from: from, ref: ref})
	m.wakeLocked()
	m.mu.Unlock()
	return true
}

// reserve marks topic followed before it has a terminal, while its
// snapshot is written: a pattern's watcher leaves it alone (it would
// subscribe it from its beginning) and a subscription to it is refused as
// a duplicate. The one that reserved it adds its terminal with reserved
// set, or unreserves it. It reports false if the topic is followed
// already or the source follows as many topics as it may.
func (m *multiSource) reserve(topic string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.members.has(topic) || m.members.len() >= wire.MaxStreamTopics {
		return false
	}
	m.members.set(topic, true)
	return true
}

// unreserve gives up a reservation whose terminal will not come.
func (m *multiSource) unreserve(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.members.get(topic); ok && r {
		m.members.del(topic)
	}
}

// has reports whether topic is followed.
func (m *multiSource) has(topic string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members.has(topic)
}

// addPattern makes p find topics from now on: every topic the hub's
// watcher reports that p matches starts at pos[topic] (0 if absent).
// The first listing reports the topics that exist.
func (m *multiSource) addPattern(p auth.Pattern, pos map[string]uint64, ref string) error {
	m.mu.Lock()
	m.patterns = append(m.patterns, patternSub{p: p, pos: pos, ref: ref})
	if m.ws {
		m.ops = append(m.ops, sourceOp{kind: opSubscribed, topic: string(p), ref: ref})
		m.wakeLocked()
	}
	m.mu.Unlock()
	// A watch of its own for each pattern's first listing (which reports
	// every topic): the new watch replaces the old.
	w, err := m.hub.WatchTopics(m.found)
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.watch
	m.watch = w
	ended := m.ended // end closed the watch it saw, not w
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if ended {
		w.Close()
	}
	return nil
}

// found is the topic watcher's function: topics that exist. It queues
// those a pattern matches that the stream does not follow yet.
func (m *multiSource) found(topics []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return
	}
	dropped := 0
	for _, op := range m.ops {
		if op.kind == opDropped {
			dropped++
		}
	}
	woke := false
	for _, t := range topics {
		if m.members.has(t) {
			continue
		}
		for _, ps := range m.patterns {
			if !ps.p.Match(t) {
				continue
			}
			if m.members.len() >= wire.MaxStreamTopics {
				if dropped < maxPendingDropped {
					dropped++
					m.ops = append(m.ops, sourceOp{kind: opDropped, topic: t})
					woke = true
				}
				break
			}
			m.members.set(t, false)
			m.ops = append(m.ops, sourceOp{kind: opAdd, topic: t, from: string(ps.p), after: ps.pos[t]})
			woke = true
			break
		}
	}
	if woke {
		m.wakeLocked()
	}
}

// remove unsubscribes a topic or a pattern (WebSocket).
func (m *multiSource) remove(topic, ref string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, ps := range m.patterns {
		if string(ps.p) == topic {
			m.patterns = append(m.patterns[:i:i], m.patterns[i+1:]...)
			break
		}
	}
	m.ops = append(m.ops, sourceOp{kind: opRemove, topic: topic, ref: ref})
	m.wakeLocked()
}

// hasPattern reports whether p is active.
func (m *multiSource) hasPattern(p string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ps := range m.patterns {
		if string(ps.p) == p {
			return true
		}
	}
	return false
}

// Ready implements streamSource.
func (m *multiSource) Ready() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.wake == nil {
		m.wake = make(chan struct{}, 1)
		m.wake <- struct{}{}
	}
	return m.wake
}

// OnReady implements streamSource.
func (m *multiSource) OnReady(f func()) {
	m.mu.Lock()
	m.onReady = f
	m.mu.Unlock()
}

func (m *multiSource) wakeLocked() {
	if m.onReady != nil {
		m.onReady()
	}
	if m.wake != nil {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// termReady is a terminal's OnReady function.
func (m *multiSource) termReady(t *topicTerm) {
	m.mu.Lock()
	if !t.queued && !m.ended {
		t.queued = true
		m.ready = append(m.ready, t)
		m.wakeLocked()
	}
	m.mu.Unlock()
}

// end implements streamSource: it closes every terminal.
func (m *multiSource) end() []any {
	m.mu.Lock()
	m.ended = true
	ops := m.ops
	m.ops, m.ready = nil, nil
	w := m.watch
	terms := make([]*hub.Terminal, 0, m.topics.len())
	for _, t := range m.topics.all() {
		terms = append(terms, t.term)
	}
	m.mu.Unlock()
	if w != nil {
		w.Close()
	}
	for _, op := range ops {
		if op.term != nil {
			op.term.Close()
		}
	}
	for _, t := range terms {
		t.Close()
	}
	return []any{"topics", len(terms)}
}

// authExpired implements streamSource.
func (m *multiSource) authExpired() []byte {
	if m.ws {
		return wsAuthExpiredFrame
	}
	return authExpiredFrame
}

var wsAuthExpiredFrame = []byte(`{"type":"` + wire.EventAuth + `","code":"` + baton.CodeUnauthorized + `","message":"token expired"}` + "\n")

// frames implements streamSource: it applies the ops, then takes one event
// of each ready terminal in turn until none is ready or the turn is full.
func (m *multiSource) frames(st *streamer, s *eventStream, bufs [][]byte) (_ [][]byte, more bool, err error) {
	m.arena = nil // the last turn's frames may still be being written
	m.mu.Lock()
	ops := m.ops
	m.ops = nil
	m.mu.Unlock()
	size := 0
	for i, op := range ops {
		ops[i] = sourceOp{}
		var err error
		bufs, err = m.apply(st, s, op, bufs)
		if err != nil {
			for _, rest := range ops[i+1:] {
				if rest.term != nil {
					rest.term.Close()
				}
			}
			return bufs, false, err
		}
	}
	for size < turnBytes {
		m.mu.Lock()
		if len(m.ready) == 0 {
			m.mu.Unlock()
			return bufs, false, nil
		}
		t := m.ready[0]
		m.ready[0] = nil
		m.ready = m.ready[1:]
		t.queued = false
		m.mu.Unlock()
		if cur, _ := m.topics.get(t.topic); cur != t {
			continue // removed
		}
		ev, ok, err := t.term.TryNext(st.ctx)
		switch {
		case errors.Is(err, hub.ErrTopicDeleted):
			bufs = m.deleted(t, bufs)
			continue
		case err != nil:
			return bufs, false, err
		case !ok:
			continue
		}
		m.termReady(t) // it may have more: back of the line
		switch ev.Kind {
		case hub.EventItems:
			for i := range ev.Frames {
				bufs = m.item(t, ev.Frames[i], bufs)
				size += len(ev.Frames[i].SSE) + 64
			}
		case hub.EventReset:
			st.log.Info("http: stream reset: position no longer kept", "request_id", s.reqID, "topic", t.topic, "earliest", ev.Earliest)
			bufs = m.reset(t, ev.Earliest, bufs)
		}
	}
	return bufs, true, nil
}

// apply carries out one op.
func (m *multiSource) apply(st *streamer, s *eventStream, op sourceOp, bufs [][]byte) ([][]byte, error) {
	switch op.kind {
	case opAdd:
		term := op.term
		if term == nil {
			var err error
			term, err = m.hub.Subscribe(m.ctx, op.topic, op.after)
			if err != nil {
				m.mu.Lock()
				m.members.del(op.topic)
				m.mu.Unlock()
				return bufs, err
			}
		}
		t := &topicTerm{topic: op.topic, term: term, named: op.named, from: op.from}
		m.mu.Lock()
		if m.ended {
			m.mu.Unlock()
			term.Close()
			return bufs, nil
		}
		m.topics.set(op.topic, t)
		m.mu.Unlock()
		if m.id != nil && !m.id.Has(op.topic) {
			m.id.Add(op.topic, op.after)
		}
		if m.ws && op.named {
			bufs = append(bufs, wsAnswer(wire.FrameSubscribed, op.topic, op.ref))
		}
		term.OnReady(func() { m.termReady(t) })
		m.termReady(t)
	case opRemove:
		var gone []*topicTerm
		if t, _ := m.topics.get(op.topic); t != nil && t.named {
			gone = append(gone, t)
		}
		for _, t := range m.topics.all() {
			if t.named || t.from != op.topic {
				continue
			}
			if p := m.patternFor(t.topic); p != "" {
				t.from = p // another pattern (or the same, again) still selects it
				continue
			}
			gone = append(gone, t)
		}
		for _, t := range gone {
			m.drop(t)
		}
		bufs = append(bufs, wsAnswer("unsubscribed", op.topic, op.ref))
	case opSubscribed:
		bufs = append(bufs, wsAnswer(wire.FrameSubscribed, op.topic, op.ref))
	case opDropped:
		e := wire.Errorf(baton.CodeTooLarge, "topic found by a pattern not followed: the stream follows at most %d topics", wire.MaxStreamTopics)
		bufs = append(bufs, m.errorFrame(op.topic, e))
	}
	return bufs, nil
}

// drop stops following t. The consumer's.
func (m *multiSource) drop(t *topicTerm) {
	m.mu.Lock()
	m.topics.del(t.topic)
	m.members.del(t.topic)
	m.mu.Unlock()
	t.term.Close()
}

// patternFor is an active pattern that selects topic, or "".
func (m *multiSource) patternFor(topic string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ps := range m.patterns {
		if ps.p.Match(topic) {
			return string(ps.p)
		}
	}
	return ""
}

// deleted ends topic t, deleted: its last frame.
func (m *multiSource) deleted(t *topicTerm, bufs [][]byte) [][]byte {
	m.drop(t)
	if m.ws {
		return append(bufs, []byte(`{"type":"`+wire.EventDeleted+`","topic":"`+t.topic+`"}`+"\n"))
	}
	if !t.named {
		m.id.Remove(t.topic)
	}
	b := m.idLine()
	b = append(b, "event: "+wire.EventDeleted+"\ndata: {\"topic\":\""...)
	b = append(b, t.topic...)
	b = append(b, "\"}\n\n"...)
	return append(bufs, b)
}

var (
	sseItemEnd = []byte("\n\n")
	wsItemEnd  = []byte("\n")
)

// item appends the frame of one item: its topic spliced into the hub's
// encoding of the item (hub.Frame.Data), which is shared, not copied.
func (m *multiSource) item(t *topicTerm, f hub.Frame, bufs [][]byte) [][]byte {
	data := f.Data()
	if t.prefix == nil {
		t.prefix = m.itemPrefix(t.topic)
	}
	if m.ws {
		return append(bufs, t.prefix, data[1:], wsItemEnd)
	}
	m.id.Set(t.topic, f.Item.Seq)
	b := m.idLine()
	b = append(b, t.prefix...)
	return append(bufs, b, data[1:], sseItemEnd)
}

// reset appends the frame of a reset of topic t.
func (m *multiSource) reset(t *topicTerm, earliest uint64, bufs [][]byte) [][]byte {
	var b []byte
	if m.ws {
		b = m.alloc(64 + len(t.topic))
	} else {
		m.id.Set(t.topic, earliest-1)
		b = m.idLine()
		b = append(b, "event: "+wire.EventReset+"\ndata: "...)
	}
	b = append(b, '{')
	if m.ws {
		b = append(b, `"type":"`+wire.EventReset+`",`...)
	}
	b = append(b, `"topic":"`...)
	b = append(b, t.topic...)
	b = append(b, `","earliest":`...)
	b = strconv.AppendUint(b, earliest, 10)
	b = append(b, '}')
	if m.ws {
		return append(bufs, append(b, '\n'))
	}
	return append(bufs, append(b, "\n\n"...))
}

// errorFrame is an error about one topic that does not end the stream.
func (m *multiSource) errorFrame(topic string, e *wire.Error) []byte {
	body, _ := json.Marshal(wire.FrameErr{Type: wire.FrameError, Topic: topic, Error: e})
	if m.ws {
		return append(body, '\n')
	}
	// Not "error": EventSource fires that name for its own failures.
	return append(append([]byte("event: dropped\ndata: "), body...), "\n\n"...)
}

// itemPrefix is what precedes the item's fields in its frame.
func (m *multiSource) itemPrefix(topic string) []byte {
	if m.ws {
		return []byte(`{"type":"` + wire.EventItem + `","topic":"` + topic + `",`)
	}
	return []byte("event: " + wire.EventItem + "\ndata: {\"topic\":\"" + topic + "\",")
}

// idLine returns a frame buffer holding the id line of the current id,
// with room for the rest of a frame's head.
func (m *multiSource) idLine() []byte {
	id := m.id.Bytes()
	b := m.alloc(len(id) + 64 + 2*baton.MaxTopicLen)
	b = append(b, "id: "...)
	b = append(b, id...)
	return append(b, '\n')
}

// alloc returns an empty slice of capacity n from the turn's arena: the
// frames of one turn share a few allocations, and each frame is a slice
// that later frames never overwrite.
func (m *multiSource) alloc(n int) []byte {
	if cap(m.arena)-len(m.arena) < n {
		m.arena = make([]byte, 0, max(n, min(2*cap(m.arena), 64<<10), 1<<10))
	}
	l := len(m.arena)
	m.arena = m.arena[:l+n]
	return m.arena[l : l : l+n]
}

// wsAnswer is a subscribed or unsubscribed frame.
func wsAnswer(typ, topic, ref string) []byte {
	body, _ := json.Marshal(wire.Subscribed{Type: typ, Topic: topic, Ref: ref})
	return append(body, '\n')
}
