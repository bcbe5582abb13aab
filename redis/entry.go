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
//	queue entry   h = "<item hash hex> <ingested_us> <len(msg_id)> <msg_id><id>"
//	              v = the value (compact JSON)
//	ledger leaf   l = "<item hash hex> <epoch> <at_ns> <publisher>"
//
// The item hash has a fixed length (64 hex digits) and the numbers hold no
// space, so the scripts find the hash with string.sub(h, 1, 64) and the msg
// id by its length; msg id, id and publisher may hold any bytes.

const hexHash = 2 * len(baton.Hash{})

// itemTail is the part of a queue entry's h field that the source gave:
// "<len(msg_id)> <msg_id><id>". The script puts the hash and its own clock
// in front.
func itemTail(u baton.Update) string {
	return strconv.Itoa(len(u.MsgID)) + " " + u.MsgID + u.ID
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

// decodeLeaf decodes ledger entry i of an XRANGE reply.
func decodeLeaf(topic string, es []any, i int) (baton.Leaf, error) {
	seq, f, _, ok := entryAt(es, i, "l", "")
	l := baton.Leaf{Topic: topic, Seq: seq}
	if !ok {
		return l, fmt.Errorf("read leaf %s/%d: malformed ledger entry", topic, seq)
	}
	h, f, err := cutHash(f)
	if err != nil {
		return l, fmt.Errorf("read leaf %s/%d: %w", topic, seq, err)
	}
	l.ItemHash = h
	ep, rest, ok1 := strings.Cut(f, " ")
	at, pub, ok2 := strings.Cut(rest, " ")
	if l.Epoch, err = strconv.ParseUint(ep, 10, 64); err != nil || !ok1 || !ok2 {
		return l, fmt.Errorf("read leaf %s/%d: malformed ledger entry", topic, seq)
	}
	l.Publisher, l.At = pub, fromNanos(at)
	return l, nil
}

// cutHash parses the item hash that starts a packed field and returns it
// with the rest of the field, after the space that follows the hash.
func cutHash(f string) (baton.Hash, string, error) {
	if len(f) < hexHash+1 || f[hexHash] != ' ' {
		return baton.Hash{}, "", errors.New("malformed entry: no item hash")
	}
	h, err := baton.ParseHash(f[:hexHash])
	return h, f[hexHash+1:], err
}

// entries returns an XRANGE reply as a list, nil for none.
func entries(c *goredis.Cmd) []any {
	es, _ := c.Val().([]any)
	return es
}
