package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/baton-pub/baton"
)

// The snapshot decisions (baton.Snapshots), referenced as S1..S6 in
// failure messages:
//
//   - S1 After a commit, Snapshot at the cursor's seq holds, for every id
//     committed and not deleted since, the latest committed item of that id,
//     as Published returns it (epoch, publisher, PublishedAt = the commit's
//     At). Appended items not yet committed are not in it.
//   - S2 A tombstone removes its id's row; a later item of the id brings it
//     back; a tombstone of an id not in the snapshot changes nothing.
//   - S3 Pages are in byte order of id, after afterID, at most limit each;
//     next is "" once no row follows; walking the pages reads every row once.
//   - S4 Trim never changes the snapshot.
//   - S5 A refused commit (fenced, cursor moved) leaves the snapshot as it
//     was.
//   - S6 DeleteTopic empties the snapshot (seq 0), with or without the
//     ledger; a topic created again starts an empty one.
//   - S7 Bad arguments are ErrInvalid naming the field ("limit", "topic",
//     "after_id"); an unknown topic has an empty snapshot at seq 0.
func snapshotTests() []test {
	return []test{
		{"FollowsCommits", testSnapshotFollowsCommits},
		{"Tombstones", testSnapshotTombstones},
		{"Paging", testSnapshotPaging},
		{"TrimKeepsIt", testSnapshotTrimKeepsIt},
		{"RefusedCommitLeavesIt", testSnapshotRefusedCommit},
		{"DeleteTopicClearsIt", testSnapshotDeleteTopic},
		{"BadArguments", testSnapshotBadArguments},
	}
}

// updatesOf returns one normalized update per id, in order; an id with a
// "-" prefix is a tombstone of the rest.
func updatesOf(e *env, ids ...string) []baton.Update {
	e.t.Helper()
	out := make([]baton.Update, len(ids))
	for i, id := range ids {
		k := msgSeq.Add(1)
		u := baton.Update{ID: id, Value: json.RawMessage(fmt.Sprintf(`{"k":%d}`, k)), MsgID: fmt.Sprintf("s-%s-%d", runID, k)}
		if id[0] == '-' {
			u = baton.Update{ID: id[1:], MsgID: u.MsgID, Deleted: true}
		}
		n, err := baton.Normalize(u)
		e.noErr(err, "Normalize(%s)", id)
		out[i] = n
	}
	return out
}

// publishIDs appends one update per id (see updatesOf) and commits them
// under l after prev; it returns the items as the queue holds them.
func (e *env) publishIDs(l baton.Lease, prev uint64, ids ...string) []baton.Item {
	e.t.Helper()
	e.append(l.Topic, updatesOf(e, ids...))
	its := e.items(l.Topic, prev, len(ids))
	e.commit(l, prev, its)
	return its
}

// snapshotAll reads the whole snapshot in pages of limit, checking that
// every page names the same seq (nothing commits meanwhile) and that the
// ids are in order.
func (e *env) snapshotAll(topic string, limit int) (uint64, []baton.Published) {
	e.t.Helper()
	var (
		all   []baton.Published
		after string
		seq   uint64
	)
	for page := 0; ; page++ {
		s, ps, next, err := e.s.Snapshot(e.ctx, topic, after, limit)
		e.noErr(err, "Snapshot(%s, after %q, limit %d)", topic, after, limit)
		if page > 0 && s != seq {
			e.t.Fatalf("Snapshot page %d at seq %d, page 0 at %d, with no commit between", page, s, seq)
		}
		seq = s
		if len(ps) > limit {
			e.t.Fatalf("Snapshot page of %d rows, limit %d [S3]", len(ps), limit)
		}
		for _, p := range ps {
			if p.ID <= after {
				e.t.Fatalf("Snapshot after %q returned id %q: not in byte order [S3]", after, p.ID)
			}
			after = p.ID
		}
		all = append(all, ps...)
		if next == "" {
			return seq, all
		}
		if len(ps) == 0 || next != ps[len(ps)-1].ID {
			e.t.Fatalf("Snapshot next %q is not the last id returned [S3]", next)
		}
		if page > pageAll {
			e.t.Fatal("Snapshot pages never end [S3]")
		}
	}
}

// checkSnapshot checks the whole snapshot of l's topic against want, the
// latest item of each id, committed under l (and at l's commits' times,
// which it does not check).
func (e *env) checkSnapshot(what, topic string, want map[string]baton.Item, l baton.Lease) {
	e.t.Helper()
	seq, got := e.snapshotAll(topic, pageAll)
	if cur := e.cursor(topic); seq != cur.Seq {
		e.t.Fatalf("%s: Snapshot at seq %d, cursor at %d [S1]", what, seq, cur.Seq)
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(got) != len(ids) {
		e.t.Fatalf("%s: %d rows, want %d (%v) [S1]", what, len(got), len(ids), ids)
	}
	for i, p := range got {
		w := want[ids[i]]
		if d := diffItem(p.Item, w); d != "" || p.Deleted {
			e.t.Fatalf("%s: row %d: %s (deleted %v) [S1]", what, i, d, p.Deleted)
		}
		if p.Seq > seq || p.Publisher != l.Holder || p.Epoch != l.Epoch || p.PublishedAt.IsZero() {
			e.t.Fatalf("%s: row %q: seq %d (snapshot at %d), published by %s epoch %d at %v, want %s epoch %d [S1]",
				what, p.ID, p.Seq, seq, p.Publisher, p.Epoch, p.PublishedAt, l.Holder, l.Epoch)
		}
	}
}

// latest folds items into want: the latest item per id, tombstones
// removing theirs.
func latest(want map[string]baton.Item, its []baton.Item) map[string]baton.Item {
	for _, it := range its {
		if it.Deleted {
			delete(want, it.ID)
		} else {
			want[it.ID] = it
		}
	}
	return want
}

func testSnapshotFollowsCommits(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	e.checkSnapshot("before any commit", topic, map[string]baton.Item{}, l)
	its := e.publishIDs(l, 0, "b", "a", "c", "a")
	want := latest(map[string]baton.Item{}, its)
	e.checkSnapshot("after the first commit", topic, want, l)

	// Appended, not committed: not in the snapshot.
	e.append(topic, updatesOf(e, "a", "d"))
	e.checkSnapshot("with items not committed", topic, want, l)
	pending := e.items(topic, 4, 2)
	c := commitOf(l, 4, pending)
	_, err := e.s.Commit(e.ctx, c)
	e.noErr(err, "Commit")
	want = latest(want, pending)
	e.checkSnapshot("after the second commit", topic, want, l)
	_, rows, _, err := e.s.Snapshot(e.ctx, topic, "", pageAll)
	e.noErr(err, "Snapshot")
	if rows[0].ID != "a" || !rows[0].PublishedAt.Equal(c.At) {
		e.t.Fatalf("row a published at %v, want the commit's At %v [S1]", rows[0].PublishedAt, c.At)
	}
	// What the commit says it published is what Published returns, to
	// the field: the holder's node hands it to its terminals instead of
	// reading it back (hub/local.go).
	// Compared as encoded (a monotonic clock reading is not the item's).
	gotJSON, _ := json.Marshal(e.published(topic, 4, 2))
	wantJSON, _ := json.Marshal(c.Published())
	if !bytes.Equal(gotJSON, wantJSON) {
		e.t.Fatalf("Published after a commit = %s, want the commit's Published %s [S1]", gotJSON, wantJSON)
	}
}

func testSnapshotTombstones(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	its := e.publishIDs(l, 0, "a", "b", "c", "-b", "-zz")
	want := latest(map[string]baton.Item{}, its)
	e.checkSnapshot("after tombstones", topic, want, l)
	if _, ok := want["b"]; ok || len(want) != 2 {
		e.t.Fatalf("test setup: want %v", want)
	}
	// A tombstone is an item like any other: published, with its mark.
	ps := e.published(topic, 3, 2)
	if len(ps) != 2 || !ps[0].Deleted || ps[0].ID != "b" || !ps[0].Verify() || string(ps[0].Value) != "null" {
		e.t.Fatalf("Published tombstone = %+v [S2]", ps)
	}
	if ps[0].Hash == baton.HashItem(topic, baton.Update{ID: "b", Value: ps[0].Value, MsgID: ps[0].MsgID}) {
		e.t.Fatal("the tombstone mark is not kept or not hashed [S2]")
	}
	// A tombstone sent again (a retry) is a duplicate of the first, with
	// its seq and hash: the engines read a tombstone's record back.
	again := updatesOf(e, "-b")
	again[0].MsgID = ps[0].MsgID
	rs, err := e.s.Append(e.ctx, topic, append(again, updatesOf(e, "-c")...))
	e.noErr(err, "Append of a tombstone again")
	if !rs[0].Duplicate || rs[0].Seq != ps[0].Seq || rs[0].Hash != ps[0].Hash || rs[1].Duplicate || rs[1].Seq != 6 {
		e.t.Fatalf("tombstone appended again: %+v, want a duplicate of seq %d [S2]", rs, ps[0].Seq)
	}
	e.commit(l, 5, e.items(topic, 5, 1))
	delete(want, "c")

	// Deleted then written again, in one commit: the later item wins.
	more := e.publishIDs(l, 6, "-a", "a", "-c")
	want = latest(want, more)
	e.checkSnapshot("after delete and write again", topic, want, l)
	if len(want) != 1 || want["a"].Seq != 8 {
		e.t.Fatalf("test setup: want %v", want)
	}
}

func testSnapshotPaging(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	var ids []string
	for i := range 25 {
		ids = append(ids, fmt.Sprintf("id-%02d", 24-i)) // appended out of order
	}
	ids = append(ids, "ID-upper", "id-\u00e9", "id-")
	its := e.publishIDs(l, 0, ids...)
	want := latest(map[string]baton.Item{}, its)
	for _, limit := range []int{1, 7, 28, 29, 30} {
		_, got := e.snapshotAll(topic, limit)
		gotIDs := make([]string, len(got))
		for i, p := range got {
			gotIDs[i] = p.ID
		}
		wantIDs := slices.Sorted(func(yield func(string) bool) {
			for id := range want {
				if !yield(id) {
					return
				}
			}
		})
		if !slices.Equal(gotIDs, wantIDs) {
			e.t.Fatalf("pages of %d: ids %v, want %v [S3]", limit, gotIDs, wantIDs)
		}
	}
	// afterID need not be an id: the rows after it.
	_, ps, next, err := e.s.Snapshot(e.ctx, topic, "id-1", 3)
	e.noErr(err, "Snapshot after a position between ids")
	if len(ps) != 3 || ps[0].ID != "id-10" || next != "id-12" {
		e.t.Fatalf("Snapshot after \"id-1\" limit 3: %d rows from %q, next %q [S3]", len(ps), ps[0].ID, next)
	}
	_, ps, next, err = e.s.Snapshot(e.ctx, topic, "id-\u00e9", 3)
	e.noErr(err, "Snapshot after the last id")
	if len(ps) != 0 || next != "" {
		e.t.Fatalf("Snapshot after the last id: %d rows, next %q [S3]", len(ps), next)
	}
}

func testSnapshotTrimKeepsIt(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	its := e.publishIDs(l, 0, "a", "b", "a", "c")
	more := e.publishIDs(l, 4, "c", "d")
	want := latest(latest(map[string]baton.Item{}, its), more)
	n, err := e.s.Trim(e.ctx, topic, 6)
	e.noErr(err, "Trim")
	if n != 5 {
		e.t.Fatalf("Trim deleted %d items, want 5", n)
	}
	e.checkSnapshot("after Trim [S4]", topic, want, l)
}

func testSnapshotRefusedCommit(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	want := latest(map[string]baton.Item{}, e.publishIDs(l, 0, "a", "b"))
	e.append(topic, updatesOf(e, "a", "-b", "c"))
	pending := e.items(topic, 2, 3)

	_, err := e.s.Commit(e.ctx, commitOf(l, 1, e.items(topic, 1, 3)))
	e.wantErr(err, baton.ErrCursorMoved, "Commit after a prev seq behind the cursor")
	bad := slices.Clone(pending)
	bad[2].Hash = bad[0].Hash
	_, err = e.s.Commit(e.ctx, commitOf(l, 2, bad))
	e.wantErr(err, baton.ErrInvalid, "Commit of an item not in the queue")
	stale := l
	stale.Epoch++
	_, err = e.s.Commit(e.ctx, commitOf(stale, 2, pending))
	e.wantErr(err, baton.ErrFenced, "Commit under a wrong epoch")
	e.checkSnapshot("after refused commits [S5]", topic, want, l)

	e.release(l, baton.ReasonReleased)
	_, err = e.s.Commit(e.ctx, commitOf(l, 2, pending))
	e.wantErr(err, baton.ErrFenced, "Commit after Release")
	e.checkSnapshot("after a fenced commit [S5]", topic, want, l)

	// The next holder commits them: the snapshot moves, under its lease.
	next := e.acquire(topic, "node-b", liveTTL)
	e.commit(next, 2, pending)
	rows := latest(want, pending)
	seq, got := e.snapshotAll(topic, pageAll)
	if seq != 5 || len(got) != 2 || got[0].ID != "a" || got[0].Epoch != next.Epoch || got[1].ID != "c" || rows["a"].Seq != 3 {
		e.t.Fatalf("after the next holder's commit: seq %d, rows %+v [S5]", seq, got)
	}
}

func testSnapshotDeleteTopic(e *env) {
	for _, ledger := range []bool{false, true} {
		topic := e.topic(fmt.Sprint(ledger))
		l := e.acquire(topic, "node-a", liveTTL)
		e.publishIDs(l, 0, "a", "b")
		_, err := e.s.DeleteTopic(e.ctx, topic, baton.DeleteOptions{Ledger: ledger})
		e.noErr(err, "DeleteTopic")
		seq, ps, next, err := e.s.Snapshot(e.ctx, topic, "", pageAll)
		e.noErr(err, "Snapshot after DeleteTopic")
		if seq != 0 || len(ps) != 0 || next != "" {
			e.t.Fatalf("Snapshot after DeleteTopic (ledger %v): seq %d, %d rows, next %q [S6]", ledger, seq, len(ps), next)
		}
		// Created again: only what is committed from now on.
		rs := e.append(topic, updatesOf(e, "c"))
		l2 := e.acquire(topic, "node-a", liveTTL)
		its := e.items(topic, rs[0].Seq-1, 1)
		e.commit(l2, rs[0].Seq-1, its)
		e.checkSnapshot(fmt.Sprintf("created again (ledger %v) [S6]", ledger), topic, map[string]baton.Item{"c": its[0]}, l2)
	}
}

func testSnapshotBadArguments(e *env) {
	topic := e.topic("")
	seq, ps, next, err := e.s.Snapshot(e.ctx, topic, "", 10)
	e.noErr(err, "Snapshot of an unknown topic")
	if seq != 0 || len(ps) != 0 || next != "" {
		e.t.Fatalf("Snapshot of an unknown topic: seq %d, %d rows, next %q [S7]", seq, len(ps), next)
	}
	l := e.acquire(topic, "node-a", liveTTL)
	e.publishIDs(l, 0, "a")
	for _, c := range []struct {
		topic, after string
		limit        int
		field        string
	}{
		{topic, "", 0, "limit"},
		{topic, "", -1, "limit"},
		{"bad topic", "", 10, "topic"},
		{topic, string(make([]byte, baton.MaxIDLen+1)), 10, "after_id"},
	} {
		_, _, _, err := e.s.Snapshot(e.ctx, c.topic, c.after, c.limit)
		e.wantField(err, c.field, "Snapshot(%q, after %d bytes, limit %d) [S7]", c.topic, len(c.after), c.limit)
	}
}
