package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/baton-pub/baton"
)

// The snapshot (baton.Snapshots): per topic, under its hash tag, a hash
// id -> row holding each id's latest published item and a sorted set of
// the ids, all at score 0, for paging in byte order (ZRANGEBYLEX). The
// commit script moves both in its atomic step, after its fencing checks
// (lua/commit.lua); lua/snapshot.lua reads a page with the cursor's seq;
// the delete script drops both. Trim does not touch them.
//
// A row is "<seq> <ingested_ns> <epoch> <at_ns> <len(publisher)>
// <publisher>" and the item's record (entry.go, appendRecord). The node
// builds the rows from the commit's items, which the script checks are the
// queue's (each hash at its seq), as it builds queue entries for Append.

func (k keyspace) snapRows(t string) string { return k.topic(t, "snap") }
func (k keyspace) snapIDs(t string) string  { return k.topic(t, "snapids") }

var scriptSnapshot = newScript("snapshot")

func init() { allScripts = append(allScripts, scriptSnapshot) }

// appendSnapshotArgs appends to a commit script's args the snapshot's
// moves: the count, then (id, row) for the last item of each id in c, row
// "" for a tombstone.
func appendSnapshotArgs(args []any, c baton.Commit) []any {
	lastOf := make(map[string]int, len(c.Items))
	for i, it := range c.Items {
		lastOf[it.ID] = i
	}
	args = append(args, len(lastOf))
	for i, it := range c.Items {
		if lastOf[it.ID] != i {
			continue
		}
		if it.Deleted {
			args = append(args, it.ID, "")
			continue
		}
		args = append(args, it.ID, string(appendRow(nil, c, it)))
	}
	return args
}

// appendRow appends the snapshot row of item it, published by commit c.
func appendRow(b []byte, c baton.Commit, it baton.Item) []byte {
	b = strconv.AppendUint(b, it.Seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, it.IngestedAt.UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, c.Epoch, 10)
	b = append(b, ' ')
	b = append(b, nanos(c.At)...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(c.Holder)), 10)
	b = append(b, ' ')
	b = append(b, c.Holder...)
	return appendRecord(b, it.Hash, it.Update())
}

// parseRow reads a row (appendRow) of topic's snapshot.
func parseRow(topic, row string) (baton.Published, error) {
	var f [5]string
	rest := row
	for i := range f {
		var ok bool
		if f[i], rest, ok = strings.Cut(rest, " "); !ok {
			return baton.Published{}, fmt.Errorf("malformed snapshot row")
		}
	}
	seq, err1 := strconv.ParseUint(f[0], 10, 64)
	ing, err2 := strconv.ParseInt(f[1], 10, 64)
	epoch, err3 := strconv.ParseUint(f[2], 10, 64)
	np, err4 := strconv.Atoi(f[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || np < 0 || np > len(rest) {
		return baton.Published{}, fmt.Errorf("malformed snapshot row")
	}
	it, _, err := parseRecord(rest[np:])
	if err != nil {
		return baton.Published{}, fmt.Errorf("malformed snapshot row: %w", err)
	}
	it.Topic, it.Seq, it.IngestedAt = topic, seq, fromNanos(strconv.FormatInt(ing, 10))
	return baton.Published{Item: it, Epoch: epoch, Publisher: rest[:np], PublishedAt: fromNanos(f[3])}, nil
}

// Snapshot implements baton.Snapshots: one script reads the cursor's seq
// and the page.
func (s *Store) Snapshot(ctx context.Context, topic, afterID string, limit int) (uint64, []baton.Published, string, error) {
	if err := baton.ValidateSnapshot(topic, afterID, limit); err != nil {
		return 0, nil, "", fmt.Errorf("snapshot: %w", err)
	}
	limit = min(limit, maxLimit)
	keys := []string{s.k.cursor(topic), s.k.meta(topic), s.k.snapRows(topic), s.k.snapIDs(topic)}
	r, err := s.runRead(ctx, scriptSnapshot, topic, keys, afterID, limit+1)
	if err != nil {
		return 0, nil, "", fmt.Errorf("snapshot of %s: %w", topic, err)
	}
	seq := replyUint(r, 0)
	n := (len(r) - 1) / 2
	out := make([]baton.Published, 0, min(n, limit))
	next := ""
	for i := 0; i < n; i++ {
		if len(out) == limit {
			next = out[limit-1].ID
			break
		}
		p, err := parseRow(topic, replyStr(r, 2+2*i))
		if err != nil {
			return 0, nil, "", fmt.Errorf("snapshot of %s: id %q: %w", topic, replyStr(r, 1+2*i), err)
		}
		out = append(out, p)
	}
	return seq, out, next, nil
}
