package wire

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-pub/baton"
)

// Limits of one multi-topic stream (GET /v1/events) or WebSocket
// (/v1/ws): the topics it follows, named or found by a pattern, and its
// patterns. docs/api.md ("Many topics on one stream") documents them.
const (
	MaxStreamTopics   = 1000
	MaxStreamPatterns = 16
)

// The Last-Event-ID of a multi-topic stream (docs/api.md, "Resume
// encoding"): every event's id carries the position of every topic of the
// stream, so that an EventSource reconnecting with any of them resumes
// each topic exactly.
//
//	id      = "1" check named* found*
//	check   = 4 digits: FNV-1a (32 bits) of the sorted named topics, each
//	          followed by "\n", its low 24 bits as 6-bit digits, high first
//	named   = pos, one per named topic (the stream's topic= values, sorted,
//	          without duplicates)
//	found   = "~" topic ":" pos, one per topic found by a pattern
//	pos     = a varint of base64url digits: the value's 5-bit groups, high
//	          first; every digit but the last is a continuation digit
//	          (alphabet index 32 + group), the last a final one (index group);
//	          no leading zero group
//
// The alphabet is base64url's (A-Z a-z 0-9 - _): "A" is 0, "hA" is 32.
// A position below 32 takes one character, below 1,024 two, below 32,768
// three.
const (
	idVersion = '1'
	alphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	checkLen  = 4
)

// digitOf maps a character to its alphabet index, -1 if not in it.
var digitOf = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// AppendPos appends the varint digits of p.
func AppendPos(b []byte, p uint64) []byte {
	n := 1
	for v := p >> 5; v > 0; v >>= 5 {
		n++
	}
	for i := n - 1; i > 0; i-- {
		b = append(b, alphabet[32+(p>>(5*i))&31])
	}
	return append(b, alphabet[p&31])
}

// parsePos reads one varint at the start of s and returns it with the
// rest of s.
func parsePos(s string) (uint64, string, error) {
	var v uint64
	for i := 0; i < len(s); i++ {
		d := digitOf[s[i]]
		if d < 0 {
			return 0, "", fmt.Errorf("character %q is not a position digit", s[i])
		}
		if i == 0 && d == 32 {
			return 0, "", fmt.Errorf("position with a leading zero digit")
		}
		if v > baton.MaxSeq>>5 {
			return 0, "", fmt.Errorf("position beyond %d", uint64(baton.MaxSeq))
		}
		v = v<<5 | uint64(d&31)
		if d < 32 {
			if v > baton.MaxSeq {
				return 0, "", fmt.Errorf("position beyond %d", uint64(baton.MaxSeq))
			}
			return v, s[i+1:], nil
		}
	}
	return 0, "", fmt.Errorf("position cut short")
}

// topicsCheck is the check digits of the sorted named topics.
func topicsCheck(named []string) [checkLen]byte {
	h := fnv.New32a()
	for _, t := range named {
		_, _ = h.Write([]byte(t))
		_, _ = h.Write([]byte{'\n'})
	}
	sum := h.Sum32()
	var c [checkLen]byte
	for i := range c {
		c[i] = alphabet[(sum>>(6*(checkLen-1-i)))&63]
	}
	return c
}

// StreamPositions are the positions of a multi-topic stream's topics: the
// named ones, by index in the sorted named list, and those found by a
// pattern, by name.
type StreamPositions struct {
	Named []uint64
	Found map[string]uint64
}

// ParseStreamID reads a multi-topic stream's Last-Event-ID against the
// stream's sorted named topics. Every error is the client's (a 400).
func ParseStreamID(id string, named []string) (StreamPositions, error) {
	bad := func(format string, args ...any) (StreamPositions, error) {
		return StreamPositions{}, baton.Invalidf("Last-Event-ID", format, args...)
	}
	if len(id) < 1+checkLen || id[0] != idVersion {
		return bad("not a multi-topic stream id (want version %c and %d check digits)", idVersion, checkLen)
	}
	if c := topicsCheck(named); id[1:1+checkLen] != string(c[:]) {
		return bad("made for another list of topics (check digits differ): resume with the stream's own topic= list, or with positions=")
	}
	rest := id[1+checkLen:]
	sp := StreamPositions{Named: make([]uint64, len(named))}
	for i := range named {
		p, r, err := parsePos(rest)
		if err != nil {
			return bad("position of topic %d: %v", i+1, err)
		}
		sp.Named[i], rest = p, r
	}
	for rest != "" {
		if rest[0] != '~' {
			return bad("want ~ before a found topic, got %q", rest[0])
		}
		name, r, ok := strings.Cut(rest[1:], ":")
		if !ok {
			return bad("found topic without ':'")
		}
		if err := baton.ValidTopic(name); err != nil {
			return bad("found topic: %v", err)
		}
		if _, dup := slices.BinarySearch(named, name); dup {
			return bad("found topic %q is also named", name)
		}
		if _, dup := sp.Found[name]; dup {
			return bad("found topic %q twice", name)
		}
		if len(named)+len(sp.Found) >= MaxStreamTopics {
			return bad("more than %d topics", MaxStreamTopics)
		}
		p, r, err := parsePos(r)
		if err != nil {
			return bad("position of topic %q: %v", name, err)
		}
		if sp.Found == nil {
			sp.Found = make(map[string]uint64)
		}
		sp.Found[name], rest = p, r
	}
	return sp, nil
}

// ParsePositions reads the explicit form of a multi-topic stream's
// positions, the ?positions= query value: "topic:seq" pairs separated by
// commas, e.g. "quotes.a:10,quotes.b:7" (decimal seqs, each topic once).
func ParsePositions(s string) (map[string]uint64, error) {
	out := make(map[string]uint64)
	if s == "" {
		return out, nil
	}
	for pair := range strings.SplitSeq(s, ",") {
		if len(out) >= MaxStreamTopics {
			return nil, baton.Invalidf("positions", "more than %d topics", MaxStreamTopics)
		}
		name, seq, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, baton.Invalidf("positions", "want topic:seq, got %q", clipText(pair, 160))
		}
		if err := baton.ValidTopic(name); err != nil {
			return nil, baton.Invalidf("positions", "%v", err)
		}
		p, err := strconv.ParseUint(seq, 10, 64)
		if err != nil || p > baton.MaxSeq {
			return nil, baton.Invalidf("positions", "position of %q: want a seq from 0 to %d", name, uint64(baton.MaxSeq))
		}
		if _, dup := out[name]; dup {
			return nil, baton.Invalidf("positions", "topic %q twice", name)
		}
		out[name] = p
	}
	return out, nil
}

// FormatPositions is the ?positions= value of a set of positions, sorted
// by topic.
func FormatPositions(pos map[string]uint64) string {
	names := make([]string, 0, len(pos))
	for t := range pos {
		names = append(names, t)
	}
	slices.Sort(names)
	var b []byte
	for i, t := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, t...)
		b = append(b, ':')
		b = strconv.AppendUint(b, pos[t], 10)
	}
	return string(b)
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// StreamID keeps a multi-topic stream's Last-Event-ID up to date as
// positions move, so that each event's id costs a copy, not an encoding
// of every position: a position whose digit count is unchanged is
// rewritten in place; one that gains a digit (rare: a position crossing a
// power of 32) or a topic found or dropped re-encodes the slots after it.
// Not safe for concurrent use.
type StreamID struct {
	buf   []byte
	slots []idSlot // named topics first, in sorted order, then found ones
	index map[string]int
	named int
}

type idSlot struct {
	topic string
	pos   uint64
	off   int // where the slot's digits start in buf
	n     int // how many digits
}

// NewStreamID returns the id of a stream with the sorted named topics at
// the given positions (len(named) == len(pos)).
func NewStreamID(named []string, pos []uint64) *StreamID {
	id := &StreamID{index: make(map[string]int, len(named)), named: len(named)}
	c := topicsCheck(named)
	id.buf = append(append(id.buf, idVersion), c[:]...)
	for i, t := range named {
		id.index[t] = i
		id.slots = append(id.slots, idSlot{topic: t, pos: pos[i]})
	}
	id.encodeFrom(0, len(id.buf))
	return id
}

// Bytes is the current id; it is valid until the next change.
func (id *StreamID) Bytes() []byte { return id.buf }

// Has reports whether topic is one of the id's topics.
func (id *StreamID) Has(topic string) bool { _, ok := id.index[topic]; return ok }

// Len is the number of topics the id carries.
func (id *StreamID) Len() int { return len(id.slots) }

// Set moves topic's position to p. A topic not in the id is ignored.
func (id *StreamID) Set(topic string, p uint64) {
	i, ok := id.index[topic]
	if !ok {
		return
	}
	s := &id.slots[i]
	s.pos = p
	d := AppendPos(id.scratch(), p)
	if len(d) == s.n {
		copy(id.buf[s.off:], d)
		return
	}
	id.encodeFrom(i, id.slotStart(i))
}

// scratch is a small buffer for one position's digits.
func (id *StreamID) scratch() []byte {
	var a [16]byte
	return a[:0]
}

// Add adds a topic found by a pattern at position p; a topic already in
// the id is left as it is.
func (id *StreamID) Add(topic string, p uint64) {
	if id.Has(topic) {
		return
	}
	start := id.end()
	id.index[topic] = len(id.slots)
	id.slots = append(id.slots, idSlot{topic: topic, pos: p})
	id.encodeFrom(len(id.slots)-1, start)
}

// Remove drops a topic found by a pattern (a named topic stays: the
// stream's URL names it).
func (id *StreamID) Remove(topic string) {
	i, ok := id.index[topic]
	if !ok || i < id.named {
		return
	}
	start := id.slotStart(i)
	delete(id.index, topic)
	id.slots = slices.Delete(id.slots, i, i+1)
	for j := i; j < len(id.slots); j++ {
		id.index[id.slots[j].topic] = j
	}
	id.encodeFrom(i, start)
}

// encodeFrom re-encodes the slots from i on, slot i's bytes starting at
// start.
func (id *StreamID) encodeFrom(i, start int) {
	id.buf = id.buf[:start]
	for j := i; j < len(id.slots); j++ {
		s := &id.slots[j]
		if j >= id.named {
			id.buf = append(id.buf, '~')
			id.buf = append(id.buf, s.topic...)
			id.buf = append(id.buf, ':')
		}
		s.off = len(id.buf)
		id.buf = AppendPos(id.buf, s.pos)
		s.n = len(id.buf) - s.off
	}
}

// slotStart is where slot i's bytes (its "~topic:" for a found topic)
// begin.
func (id *StreamID) slotStart(i int) int {
	s := id.slots[i]
	if i >= id.named {
		return s.off - len(s.topic) - 2
	}
	return s.off
}

// end is where the encoded slots end.
func (id *StreamID) end() int {
	if len(id.slots) == 0 {
		return 1 + checkLen
	}
	s := id.slots[len(id.slots)-1]
	return s.off + s.n
}
