package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// The queue and the ledger are streams of spans: an entry holds the items
// of one append (the leaves of one commit), and its id is the last seq it
// holds.
//
//	queue entry     b = "<first seq> <ingested_us> " and one record per item,
//	                in seq order: "<item hash><len(msg_id)> <len(id)>
//	                <len(value)> <msg_id><id><value>"
//	ledger segment  s = "<first seq> <epoch> <at_ns> <len(publisher)>
//	                <publisher><item hash>...": the leaves of one commit
//	                (they share its time), their hashes in seq order
//
// A Lua script pays for each command it calls and each string it builds,
// on Redis's one thread, so a script that added an entry per item spent
// most of its time in that glue (docs/benchmarks.md, changes 13-16). An
// entry per append or commit is one XADD of a
// body the node built: the script's work per item is the two index entries
// an item must have (msg id and hash), and readers get one field per
// hundred items to encode and parse instead of two per item. Record batches
// in Kafka and NATS JetStream's batched writes make the same trade.
//
// What it costs: an entry is trimmed only once all its items are under the
// trim mark (reads never return an item under the mark, so the trim is exact
// for every reader; the bytes go with the entry's last item), and the
// scripts that need one item's hash (a duplicate's, the cursor's after a
// failover) parse its entry (lib.lua, hash_finder).
//
// Every entry starts at the seq after the previous one ends, so XRANGE
// (after+1)-0 (after+n)-0 plus the next entry (spans) reads exactly the
// entries that hold seqs after+1 to after+n.
//
// An item hash is kept as its 32 bytes, never as hex: in the entries, the
// hash index's keys, the ledger segments and the cursor. Hex would double
// what every item costs Redis in memory, in the append-only file and in
// replies, and every node would encode and parse it. Release records, which
// are JSON, carry it in hex. Lengths and numbers hold no space, so a record
// is read by its lengths; msg id, id, value and publisher may hold any
// bytes.

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

// appendRecord appends the record of an item to a queue entry's body:
// "<hash, 32 bytes><len(msg_id)> <len(id)> <len(value)> <msg_id><id><value>",
// with the tombstone mark 'd' after the hash for a tombstone (lua/lib.lua,
// each_record, skips it; records made before tombstones have none).
func appendRecord(b []byte, h baton.Hash, u baton.Update) []byte {
	b = append(b, h[:]...)
	if u.Deleted {
		b = append(b, tombstoneMark)
	}
	b = strconv.AppendInt(b, int64(len(u.MsgID)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(u.ID)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(u.Value)), 10)
	b = append(b, ' ')
	b = append(b, u.MsgID...)
	b = append(b, u.ID...)
	return append(b, u.Value...)
}

// tombstoneMark follows a tombstone's hash in its record.
const tombstoneMark = 'd'

// parseRecord parses the record (appendRecord) at the start of b: the item
// it holds (hash, msg id, id, value, deleted) and what follows it.
func parseRecord(b string) (baton.Item, string, error) {
	var it baton.Item
	if len(b) < hashLen+6 {
		return it, "", fmt.Errorf("short")
	}
	copy(it.Hash[:], b)
	b = b[hashLen:]
	if b[0] == tombstoneMark {
		it.Deleted, b = true, b[1:]
	}
	ml, r, ok1 := strings.Cut(b, " ")
	il, r, ok2 := strings.Cut(r, " ")
	vl, r, ok3 := strings.Cut(r, " ")
	m, err1 := strconv.Atoi(ml)
	n, err2 := strconv.Atoi(il)
	v, err3 := strconv.Atoi(vl)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || err3 != nil ||
		m < 0 || n < 0 || v < 0 || m > len(r) || n > len(r) || v > len(r) || m+n+v > len(r) {
		return it, "", fmt.Errorf("bad lengths")
	}
	it.MsgID, it.ID, it.Value = r[:m], r[m:m+n], []byte(r[m+n:m+n+v])
	return it, r[m+n+v:], nil
}

// entryAt returns entry i of an XRANGE reply: its seq (its id's, the last
// seq it holds) and the value of its field named field ("" if it lacks it).
func entryAt(es []any, i int, field string) (last uint64, v string, ok bool) {
	e, _ := es[i].([]any)
	if len(e) != 2 {
		return 0, "", false
	}
	id, _ := e[0].(string)
	fs, _ := e[1].([]any)
	if id == "" {
		return 0, "", false
	}
	for j := 0; j+1 < len(fs); j += 2 {
		if f, _ := fs[j].(string); f == field {
			v, _ = fs[j+1].(string)
		}
	}
	return seqOf(id), v, true
}

// decodeItems returns the items with seq > after in the queue entries of an
// XRANGE reply, at most limit of them, checking that they follow on from
// after+1 without a gap.
func decodeItems(topic string, es []any, after uint64, limit int) ([]baton.Item, error) {
	var out []baton.Item
	next := after + 1
	for i := range es {
		if len(out) >= limit {
			break
		}
		last, b, ok := entryAt(es, i, "b")
		bad := func(why string) error {
			return fmt.Errorf("read items %s: queue entry %d: malformed: %s", topic, last, why)
		}
		if !ok {
			return nil, bad("not a stream entry")
		}
		first, rest, ok1 := strings.Cut(b, " ")
		ing, rest, ok2 := strings.Cut(rest, " ")
		seq, err1 := strconv.ParseUint(first, 10, 64)
		us, err2 := strconv.ParseInt(ing, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || seq < 1 || seq > last {
			return nil, bad("bad header")
		}
		if seq > next {
			return nil, bad(fmt.Sprintf("starts at %d: items %d to %d are missing", seq, next, seq-1))
		}
		at := fromMicros(us)
		for ; rest != "" && len(out) < limit; seq++ {
			it, r, err := parseRecord(rest)
			if err != nil {
				return nil, bad(fmt.Sprintf("record %d: %v", seq, err))
			}
			rest = r
			if seq < next {
				continue
			}
			it.Topic, it.Seq, it.IngestedAt = topic, seq, at
			out = append(out, it)
		}
		if rest == "" && seq != last+1 {
			return nil, bad(fmt.Sprintf("records end at %d", seq-1))
		}
		next = max(next, last+1)
	}
	return out, nil
}

// spans adds to pipe the reads of the entries of a stream of spans (queue
// entries, ledger segments: each entry's id is the last seq it holds) that
// hold seqs after+1 to after+n: the entries that end in that range (at most
// n, as none is empty) and the one after them, which holds after+n if an
// entry ends beyond it. Reading by range keeps a reply to what is asked
// for: entries are as long as appends and commits. The function it returns
// gives the entries of both reads, once the pipeline has run.
func spans(ctx context.Context, pipe goredis.Pipeliner, key string, after uint64, n int64) func() []any {
	in := pipe.Do(ctx, "XRANGE", key, streamID(after+1), streamID(after+uint64(n)))
	next := pipe.Do(ctx, "XRANGE", key, streamID(after+uint64(n)+1), "+", "COUNT", 1)
	return func() []any { return append(entries(in), entries(next)...) }
}

// decodeLeaves decodes the leaves with seq > after in the ledger segments
// of an XRANGE reply, at most limit of them, checking that they follow on
// from after+1 without a gap.
func decodeLeaves(topic string, es []any, after uint64, limit int) ([]baton.Leaf, error) {
	var out []baton.Leaf
	next := after + 1
	for i := range es {
		last, f, ok := entryAt(es, i, "s")
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

// entries returns an XRANGE reply as a list, nil for none.
func entries(c *goredis.Cmd) []any {
	es, _ := c.Val().([]any)
	return es
}
