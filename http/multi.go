package http

import (
	nethttp "net/http"
	"slices"
	"strings"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/wire"
)

// multiEvents serves GET /v1/events?topic=a&topic=b&topic=quotes.*: many
// topics on one event stream (docs/api.md, "Many topics on one stream").
// Each topic is a terminal of the node's hub, as for a one-topic stream,
// and the stream goes to the same writers (stream.go); what differs is its
// source (multiSource): each event's data names its topic, and its id
// carries every topic's position (wire.StreamID).
func (s *Server) multiEvents(w nethttp.ResponseWriter, r *nethttp.Request) {
	sel, err := s.selection(r, r.URL.Query()["topic"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	named, found, err := multiPositions(r, sel)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// With a snapshot, each topic at position 0, named or found by a
	// pattern when the stream starts, starts with its snapshot, as on a
	// one-topic stream (startSnapshots, snapshot.go). Topics a pattern
	// finds later are new: they start at their beginning.
	snap, err := queryBool(r, "snapshot")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, ok := s.admitStream(w, r)
	if !ok {
		return
	}
	m := newMultiSource(s.cfg.Hub, a.ctx, false)
	fail := func(err error) {
		m.end()
		s.refuse(w, r, a, err)
	}
	if len(sel.patterns) > 0 {
		// Topics that exist now, so that too many is an answer, not
		// dropped events; later ones come from the hub's topic watcher.
		all, err := s.cfg.Store.Topics(a.ctx)
		if err != nil {
			fail(err)
			return
		}
		for _, t := range all {
			if _, ok := found[t]; !ok && sel.patterns.Match(t) && !sel.isNamed(t) {
				found[t] = 0
			}
		}
	}
	if n := len(sel.named) + len(found); n > wire.MaxStreamTopics {
		fail(wire.Errorf(baton.CodeTooLarge, "%d topics: a stream follows at most %d", n, wire.MaxStreamTopics))
		return
	}
	pos := make([]uint64, len(sel.named))
	for i, t := range sel.named {
		pos[i] = named[t]
	}
	m.id = wire.NewStreamID(sel.named, pos)
	var snaps []snapTopic // the topics whose snapshot goes first, reserved
	for i, t := range sel.named {
		if snap && pos[i] == 0 && m.reserve(t) {
			snaps = append(snaps, snapTopic{topic: t})
			continue
		}
		if err := m.subscribe(t, pos[i], true, "", false); err != nil {
			fail(err)
			return
		}
	}
	for _, t := range sortedKeys(found) {
		m.id.Add(t, found[t])
		from := patternOf(sel.patterns, t)
		if snap && found[t] == 0 && m.reserve(t) {
			snaps = append(snaps, snapTopic{topic: t, from: from})
			continue
		}
		if err := m.subscribe(t, found[t], false, from, false); err != nil {
			fail(err)
			return
		}
	}
	for _, p := range sel.patterns {
		if err := m.addPattern(p, found, ""); err != nil {
			fail(err)
			return
		}
	}
	st := &eventStream{src: m}
	var first func(streamWriter) error
	if len(snaps) > 0 {
		first = func(out streamWriter) error { return s.startSnapshots(a.ctx, st, m, out, snaps) }
	}
	s.serveStream(w, r, st, a, first, "topics", len(sel.named)+len(found), "patterns", len(sel.patterns), "snapshots", len(snaps))
}

// subscribe adds a terminal of topic from after (see add).
func (m *multiSource) subscribe(topic string, after uint64, named bool, from string, reserved bool) error {
	term, err := m.hub.Subscribe(m.ctx, topic, after)
	if err != nil {
		return err
	}
	m.add(term, named, from, "", reserved)
	return nil
}

// snapTopic is a topic whose snapshot starts a stream of many topics:
// named, or found by the pattern from.
type snapTopic struct {
	topic, from string
}

// selection is what a multi-topic stream follows: named topics (sorted,
// without duplicates) and patterns.
type selection struct {
	named    []string
	patterns auth.Patterns
}

func (sel selection) isNamed(t string) bool {
	_, ok := slices.BinarySearch(sel.named, t)
	return ok
}

// selection reads and checks the topic= values of a multi-topic stream:
// their number, their syntax, and the caller's subscribe right on each
// topic and over each pattern.
func (s *Server) selection(r *nethttp.Request, values []string) (selection, error) {
	var sel selection
	if len(values) == 0 {
		return sel, baton.Invalidf("topic", "want at least one topic= (a topic or a pattern such as quotes.*)")
	}
	if len(values) > wire.MaxStreamTopics+wire.MaxStreamPatterns {
		return sel, wire.Errorf(baton.CodeTooLarge, "%d topic= values: a stream follows at most %d topics and %d patterns", len(values), wire.MaxStreamTopics, wire.MaxStreamPatterns)
	}
	for _, v := range values {
		if strings.Contains(v, "*") {
			p, err := auth.ParsePattern(v)
			if err != nil {
				return sel, baton.Invalidf("topic", "%v", err)
			}
			if !slices.Contains(sel.patterns, p) {
				sel.patterns = append(sel.patterns, p)
			}
			continue
		}
		if err := baton.ValidTopic(v); err != nil {
			return sel, err
		}
		sel.named = append(sel.named, v)
	}
	slices.Sort(sel.named)
	sel.named = slices.Compact(sel.named)
	switch {
	case len(sel.named) > wire.MaxStreamTopics:
		return sel, wire.Errorf(baton.CodeTooLarge, "%d topics: a stream follows at most %d", len(sel.named), wire.MaxStreamTopics)
	case len(sel.patterns) > wire.MaxStreamPatterns:
		return sel, wire.Errorf(baton.CodeTooLarge, "%d patterns: a stream takes at most %d", len(sel.patterns), wire.MaxStreamPatterns)
	}
	if s.cfg.Auth == nil {
		return sel, nil
	}
	g := callerOf(r).grant
	for _, t := range sel.named {
		if !g.Can(auth.Subscribe, t) {
			return sel, wire.Errorf(baton.CodeForbidden, "the token may not subscribe to topic %q", t)
		}
	}
	for _, p := range sel.patterns {
		if !patternWithin(p, g.Subscribe) {
			return sel, wire.Errorf(baton.CodeForbidden, "the token may not subscribe to every topic pattern %q selects", p)
		}
	}
	return sel, nil
}

// patternWithin reports whether every topic p selects is selected by one
// of rights: the token's rights must cover a pattern, not only some of
// its topics.
func patternWithin(p auth.Pattern, rights auth.Patterns) bool {
	prefix, _ := strings.CutSuffix(string(p), "*") // "" for "*"
	for _, r := range rights {
		if r == "*" {
			return true
		}
		if rp, wild := strings.CutSuffix(string(r), "*"); wild && p != "*" && strings.HasPrefix(prefix, rp) {
			return true
		}
	}
	return false
}

// patternOf is the first pattern that selects t.
func patternOf(ps auth.Patterns, t string) string {
	for _, p := range ps {
		if p.Match(t) {
			return string(p)
		}
	}
	return ""
}

// multiPositions reads where each topic of a multi-topic stream starts:
// the Last-Event-ID header if present (a reconnecting EventSource sends
// it), else ?positions=, else 0 for every topic. named maps named topics;
// found, topics found by a pattern, each of which a pattern must select.
func multiPositions(r *nethttp.Request, sel selection) (named, found map[string]uint64, err error) {
	named, found = make(map[string]uint64), make(map[string]uint64)
	if v := strings.TrimSpace(r.Header.Get("Last-Event-ID")); v != "" {
		sp, err := wire.ParseStreamID(v, sel.named)
		if err != nil {
			return nil, nil, err
		}
		for i, t := range sel.named {
			named[t] = sp.Named[i]
		}
		for t, p := range sp.Found {
			if !sel.patterns.Match(t) {
				return nil, nil, baton.Invalidf("Last-Event-ID", "topic %q is neither named nor selected by a pattern of the stream", t)
			}
			found[t] = p
		}
		return named, found, nil
	}
	pos, err := wire.ParsePositions(r.URL.Query().Get("positions"))
	if err != nil {
		return nil, nil, err
	}
	for t, p := range pos {
		switch {
		case sel.isNamed(t):
			named[t] = p
		case sel.patterns.Match(t):
			found[t] = p
		default:
			return nil, nil, baton.Invalidf("positions", "topic %q is neither named nor selected by a pattern of the stream", t)
		}
	}
	return named, found, nil
}

func sortedKeys(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var _ streamSource = (*multiSource)(nil)
