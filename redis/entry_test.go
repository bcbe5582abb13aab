package redis

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/baton-pub/baton"
)

// queueEntry builds an XRANGE reply entry as Redis returns a queue entry:
// id "<last>-0", field b.
func queueEntry(last uint64, b string) any {
	return []any{strconv.FormatUint(last, 10) + "-0", []any{"b", b}}
}

// TestQueueEntryRoundTrip writes records as Append does and reads them back
// as Items does, from any starting point and with any limit.
func TestQueueEntryRoundTrip(t *testing.T) {
	var want []baton.Item
	var es []any
	seq := uint64(1)
	for e, n := range []int{3, 1, 4} {
		body := []byte(fmt.Sprintf("%d 1700000000%06d ", seq, e))
		for range n {
			u := baton.Update{ID: fmt.Sprintf("id %d", seq), MsgID: fmt.Sprintf("m %d", seq), Value: []byte(fmt.Sprintf(`{"n":%d}`, seq))}
			h := baton.HashItem("t", u)
			body = appendRecord(body, h, u)
			want = append(want, baton.Item{Topic: "t", Seq: seq, Hash: h, MsgID: u.MsgID, ID: u.ID, Value: u.Value})
			seq++
		}
		es = append(es, queueEntry(seq-1, string(body)))
	}
	for after := range uint64(len(want)) {
		for limit := 1; limit <= len(want)+1; limit++ {
			got, err := decodeItems("t", es, after, limit)
			if err != nil {
				t.Fatalf("after %d limit %d: %v", after, limit, err)
			}
			exp := want[after:min(int(after)+limit, len(want))]
			if len(got) != len(exp) {
				t.Fatalf("after %d limit %d: %d items, want %d", after, limit, len(got), len(exp))
			}
			for i := range got {
				g, w := got[i], exp[i]
				if g.Seq != w.Seq || g.Hash != w.Hash || g.MsgID != w.MsgID || g.ID != w.ID || !bytes.Equal(g.Value, w.Value) || g.IngestedAt.IsZero() {
					t.Fatalf("after %d limit %d: item %d = %+v, want %+v", after, limit, i, g, w)
				}
			}
		}
	}
}

// TestQueueEntryMalformed checks that a damaged entry is an error, never a
// wrong item or a panic.
func TestQueueEntryMalformed(t *testing.T) {
	u := baton.Update{ID: "a", MsgID: "m", Value: []byte(`1`)}
	good := string(appendRecord([]byte("1 5 "), baton.HashItem("t", u), u))
	for name, e := range map[string]any{
		"no header":         queueEntry(1, "junk"),
		"first after last":  queueEntry(1, "2 5 "+good[4:]),
		"a gap":             queueEntry(2, "2 5 "+good[4:]),
		"short record":      queueEntry(1, good[:len(good)-1]),
		"fewer records":     queueEntry(2, good),
		"huge length":       queueEntry(1, "1 5 "+good[4:36]+"9223372036854775807 1 1 x"),
		"not a stream item": []any{"1-0"},
	} {
		if items, err := decodeItems("t", []any{e}, 0, 10); err == nil {
			t.Errorf("%s: no error, items %+v", name, items)
		}
	}
}

// FuzzDecodeItems feeds arbitrary entry bodies to the queue entry parser: it
// must return an error or items that follow on from after, never panic.
func FuzzDecodeItems(f *testing.F) {
	u := baton.Update{ID: "a", MsgID: "m", Value: []byte(`{"x":1}`)}
	f.Add(uint64(1), string(appendRecord([]byte("1 5 "), baton.HashItem("t", u), u)))
	f.Add(uint64(2), "1 5 ")
	f.Fuzz(func(t *testing.T, last uint64, b string) {
		items, err := decodeItems("t", []any{queueEntry(last, b)}, 0, 100)
		if err != nil {
			return
		}
		for i, it := range items {
			if it.Seq != uint64(i)+1 || it.Seq > last {
				t.Fatalf("item %d has seq %d (entry ends at %d)", i, it.Seq, last)
			}
		}
	})
}
