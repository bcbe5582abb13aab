package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// Stream entries are packed into as few fields as possible: a reader pays
// for every field twice (Redis encodes it, the client parses it), and the
// queue and the ledger are read by every node's hub and witness.
//
//	queue entry   h = "<item hash> <ingested_us> <len(msg_id)> <msg_id><id>"
//	              v = the value (compact JSON)
//	ledger        one entry per segment: the leaves of one commit that share
//	segment       a time. Its id is its last seq; s = "<first seq> <epoch>
//	              <at_ns> <len(publisher)> <publisher><item hash>...", the
//	              hashes of its leaves in seq order.
//
// An item hash is kept as its 32 bytes, never as hex: in the entries, the
// hash index's keys, the ledger segments and the cursor. Hex would double
// what every item costs Redis in memory, in the append-only file and in
// replies, and every node would encode and parse it. Release records, which
// are JSON, carry it in hex. The hash has a fixed length and the numbers
// hold no space, so the scripts find the hash with string.sub(h, 1, 32) and
// the msg id by its length; msg id, id and publisher may hold any bytes.
//
// A segment holds what its leaves share once (epoch, time, publisher) and
// costs one XADD per commit instead of one per item: the commit script,
// the append-only file and every reader of the ledger do a hundredth of the
// work at a batch of 100. Because its id is its last seq, XRANGE from
// (after+1)-0 starts with the segment that holds seq after+1.

const hashLen = len(baton.Hash{})

// rawHash is a hash as Redis keeps it: its 32 bytes.
func rawHash(h baton.Hash) string { return string(h[:]) }

// hashOf reads a hash kept as its 32 bytes.
func hashOf(s string) (baton.Hash, error) {
	var h baton.Hash
	if len(s) != hashLen {
		return h, fmt.Errorf("malformed entry: an item hash of %d bytes", len(s))
	}
	copy(h[:], s)
	return h, nil
}

// entryHead is a queue entry's h field: "<hash> <ingested_us>
// <len(msg_id)> <msg_id><id>".
func entryHead(h baton.Hash, ingestedUs string, u baton.Update) string {
	var b strings.Builder
	b.Grow(hashLen + len(ingestedUs) + len(u.MsgID) + len(u.ID) + 8)
	b.Write(h[:])
	b.WriteByte(' ')
	b.WriteString(ingestedUs)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(u.MsgID)))
	b.WriteByte(' ')
	b.WriteString(u.MsgID)
	b.WriteString(u.ID)
	return b.String()
}

// xrange adds XRANGE key (after+1)-0 + COUNT n to pipe. Its raw reply is
// parsed by entryAt: go-redis's XRangeN would build a map per entry.
func xrange(ctx context.Context, pipe goredis.Pipeliner, key string, after uint64, n int64) *goredis.Cmd {
	return pipe.Do(ctx, "XRANGE", key, streamID(after+1), "+", "COUNT", n)
}

// entryAt returns entry i of an XRANGE reply: its seq and the values of
// its fields named a and b ("" for a field it lacks), found by name.
func entryAt(es []any, i int, a, b string) (seq uint64, va, vb string, ok bool) {
	e, _ := es[i].([]any)
	if len(e) != 2 {
		return 0, "", "", false
	}
	id, _ := e[0].(string)
	fs, _ := e[1].([]any)
	if id == "" {
		return 0, "", "", false
	}
	for j := 0; j+1 < len(fs); j += 2 {
		switch f, _ := fs[j].(string); f {
		case a:
			va, _ = fs[j+1].(string)
		case b:
			vb, _ = fs[j+1].(string)
		}
	}
	return seqOf(id), va, vb, true
}

// decodeItem decodes queue entry i of an XRANGE reply.
func decodeItem(topic string, es []any, i int) (baton.Item, error) {
	seq, h, v, ok := entryAt(es, i, "h", "v")
	bad := func(why string) error {
		return fmt.Errorf("read item %s/%d: malformed queue entry: %s", topic, seq, why)
	}
	if !ok {
		return baton.Item{}, bad("not a stream entry")
	}
	it := baton.Item{Topic: topic, Seq: seq, Value: []byte(v)}
	hash, h, err := cutHash(h)
	if err != nil {
		return it, fmt.Errorf("read item %s/%d: %w", topic, seq, err)
	}
	it.Hash = hash
	ing, rest, ok1 := strings.Cut(h, " ")
	ml, rest, ok2 := strings.Cut(rest, " ")
	n, err := strconv.Atoi(ml)
	if !ok1 || !ok2 || err != nil || n < 0 || n > len(rest) {
		return it, bad("bad msg id length")
	}
	it.MsgID, it.ID = rest[:n], rest[n:]
	us, _ := strconv.ParseInt(ing, 10, 64)
	it.IngestedAt = fromMicros(us)
	return it, nil
}

// segments adds to pipe the reads of the ledger segments that hold seqs
// after+1 to after+n: the segments that end in that range (at most n, as
// none is empty) and the one after them, which holds after+n if a segment
// ends beyond it. Reading by range keeps a reply to what is asked for:
// segments are as long as commits.
func segments(ctx context.Context, pipe goredis.Pipeliner, key string, after uint64, n int64) (in, next *goredis.Cmd) {
	in = pipe.Do(ctx, "XRANGE", key, streamID(after+1), streamID(after+uint64(n)))
	next = pipe.Do(ctx, "XRANGE", key, streamID(after+uint64(n)+1), "+", "COUNT", 1)
	return in, next
}

// decodeLeaves decodes the leaves with seq > after in the ledger segments
// of an XRANGE reply, at most limit of them, checking that they follow on
// from after+1 without a gap.
func decodeLeaves(topic string, es []any, after uint64, limit int) ([]baton.Leaf, error) {
	var out []baton.Leaf
	next := after + 1
	for i := range es {
		last, f, _, ok := entryAt(es, i, "s", "")
		bad := func(why string) error {
			return fmt.Errorf("read leaves %s: ledger segment %d: %s", topic, last, why)
		}
		if !ok {
			return nil, bad("not a stream entry")
		}
		first, rest, ok1 := strings.Cut(f, " ")
		ep, rest, ok2 := strings.Cut(rest, " ")
		at, rest, ok3 := strings.Cut(rest, " ")
		pl, rest, ok4 := strings.Cut(rest, " ")
		from, err1 := strconv.ParseUint(first, 10, 64)
		epoch, err2 := strconv.ParseUint(ep, 10, 64)
		np, err3 := strconv.Atoi(pl)
		if !ok1 || !ok2 || !ok3 || !ok4 || err1 != nil || err2 != nil || err3 != nil || np < 0 || np > len(rest) {
			return nil, bad("malformed")
		}
		pub, hs := rest[:np], rest[np:]
		if len(hs)%hashLen != 0 || from < 1 || uint64(len(hs)/hashLen) != last-from+1 {
			return nil, bad(fmt.Sprintf("%d bytes of hashes for seqs %d to %d", len(hs), from, last))
		}
		if from > next {
			return nil, bad(fmt.Sprintf("starts at %d: leaves %d to %d are missing", from, next, from-1))
		}
		t := fromNanos(at)
		for seq := max(from, next); seq <= last && len(out) < limit; seq++ {
			var h baton.Hash
			copy(h[:], hs[int(seq-from)*hashLen:])
			out = append(out, baton.Leaf{Topic: topic, Seq: seq, ItemHash: h, Epoch: epoch, Publisher: pub, At: t})
		}
		if len(out) == limit {
			break
		}
		next = max(next, last+1)
	}
	return out, nil
}

// cutHash parses the item hash that starts a packed field and returns it
// with the rest of the field, after the space that follows the hash.
func cutHash(f string) (baton.Hash, string, error) {
	if len(f) < hashLen+1 || f[hashLen] != ' ' {
		return baton.Hash{}, "", errors.New("malformed entry: no item hash")
	}
	h, err := hashOf(f[:hashLen])
	return h, f[hashLen+1:], err
}

// entries returns an XRANGE reply as a list, nil for none.
func entries(c *goredis.Cmd) []any {
	es, _ := c.Val().([]any)
	return es
}
