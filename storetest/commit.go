package storetest

import (
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

func commitTests() []test {
	return []test{
		{"CommitMovesCursor", testCommitMovesCursor},
		{"PublishedNeverBeyondCursor", testPublishedNeverBeyondCursor},
		{"StaleEpochAfterHandover", testStaleEpochAfterHandover},
		{"StaleEpochAfterZombieLapse", testStaleEpochAfterZombieLapse},
		{"AfterExpiry", testCommitAfterExpiry},
		{"AfterRelease", testCommitAfterRelease},
		{"NotTheHolder", testCommitNotTheHolder},
		{"WrongPrevSeq", testCommitWrongPrevSeq},
		{"Malformed", testCommitMalformed},
		{"ResumeAfterHandover", testResumeAfterHandover},
	}
}

// snapshot is what a refused commit must leave unchanged.
type snapshot struct {
	cursor    baton.Cursor
	published int
	leaves    []baton.Leaf
}

func (e *env) snapshot(topic string) snapshot {
	e.t.Helper()
	return snapshot{
		cursor:    e.cursor(topic),
		published: len(e.published(topic, 0, pageAll)),
		leaves:    e.leaves(topic, 0, pageAll),
	}
}

func (e *env) unchanged(what, topic string, before snapshot) {
	e.t.Helper()
	now := e.snapshot(topic)
	c, b := now.cursor, before.cursor
	if c.Seq != b.Seq || c.Hash != b.Hash || c.Epoch != b.Epoch {
		e.t.Fatalf("%s moved the cursor from {%d %s epoch %d} to {%d %s epoch %d}", what, b.Seq, b.Hash, b.Epoch, c.Seq, c.Hash, c.Epoch)
	}
	if now.published != before.published {
		e.t.Fatalf("%s changed Published: %d items, was %d", what, now.published, before.published)
	}
	e.checkLeaves(what+": Leaves", now.leaves, before.leaves)
}

func testCommitMovesCursor(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 5)
	l := e.acquire(topic, "node-a", liveTTL)

	c1 := commitOf(l, 0, its[:3])
	cur, err := e.s.Commit(e.ctx, c1)
	e.noErr(err, "Commit of items 1..3")
	e.checkCursor("Commit's cursor", cur, topic, its[2], l.Epoch)
	e.checkNow("cursor UpdatedAt", cur.UpdatedAt)
	read := e.cursor(topic)
	e.checkCursor("Cursor after Commit", read, topic, its[2], l.Epoch)
	e.checkPublished("Published after Commit", e.published(topic, 0, pageAll), its[:3], l)
	e.checkLeaves("Leaves after Commit", e.leaves(topic, 0, pageAll), c1.Leaves())
	e.checkItems("Items after Commit", e.items(topic, 0, pageAll), its)

	// The holder renews between commits: the same epoch goes on committing.
	r, err := e.renew(l, liveTTL)
	e.noErr(err, "Renew")
	c2 := commitOf(r, 3, its[3:])
	c2.At = c1.At.Add(time.Microsecond + time.Nanosecond) // each commit's leaves keep its own time
	cur, err = e.s.Commit(e.ctx, c2)
	e.noErr(err, "Commit of items 4..5")
	e.checkCursor("second Commit's cursor", cur, topic, its[4], l.Epoch)
	ps := e.published(topic, 0, pageAll)
	e.checkPublished("Published after two commits", ps, its, l)
	for i, p := range ps {
		want := c1.At
		if i >= 3 {
			want = c2.At
		}
		if !p.PublishedAt.Equal(want) {
			e.t.Fatalf("published %d: PublishedAt %v, want its commit's At %v [C4]", p.Seq, p.PublishedAt, want)
		}
	}
	e.checkLeaves("Leaves after two commits", e.leaves(topic, 0, pageAll), append(c1.Leaves(), c2.Leaves()...))
	e.checkLeaves("Leaves(after 3)", e.leaves(topic, 3, pageAll), c2.Leaves())
	e.checkLeaves("Leaves(after 0, limit 2)", e.leaves(topic, 0, 2), c1.Leaves()[:2])
}

func testPublishedNeverBeyondCursor(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 5)
	if ps := e.published(topic, 0, pageAll); len(ps) != 0 {
		e.t.Fatalf("Published before any commit: %d items", len(ps))
	}
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its[:2])
	e.checkPublished("Published(after 0)", e.published(topic, 0, pageAll), its[:2], l)
	e.checkPublished("Published(after 1, limit 1)", e.published(topic, 1, 1), its[1:2], l)
	e.checkPublished("Published(after 0, limit 1)", e.published(topic, 0, 1), its[:1], l)
	if ps := e.published(topic, 2, pageAll); len(ps) != 0 {
		e.t.Fatalf("Published(after the cursor) returned %d items beyond the cursor", len(ps))
	}
	if ps := e.published(topic, 4, pageAll); len(ps) != 0 {
		e.t.Fatalf("Published(after 4) returned %d unpublished items", len(ps))
	}
	e.checkItems("Items", e.items(topic, 2, pageAll), its[2:])
}

// testStaleEpochAfterHandover: the old holder released, a new one acquired;
// the old epoch's commit is fenced and changes nothing.
func testStaleEpochAfterHandover(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 6)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:2])
	e.release(a, baton.ReasonReleased)
	b := e.acquire(topic, "node-b", liveTTL)
	before := e.snapshot(topic)

	_, err := e.s.Commit(e.ctx, commitOf(a, 2, its[2:4]))
	e.wantErr(err, baton.ErrFenced, "Commit under epoch %d after epoch %d acquired [C2]", a.Epoch, b.Epoch)
	e.wantErr(err, baton.ErrLeaseLost, "Commit under a stale epoch (ErrFenced wraps ErrLeaseLost)")
	e.unchanged("a fenced commit", topic, before)

	e.commit(b, 2, its[2:4])
	e.checkPublished("Published after the new holder's commit", e.published(topic, 2, pageAll), its[2:4], b)
}

// testStaleEpochAfterZombieLapse: the old holder paused past its ttl, a new
// holder took over, and the zombie wakes up and tries to commit.
func testStaleEpochAfterZombieLapse(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 4)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:1])
	a = e.lapse(a)
	b := e.acquire(topic, "node-b", liveTTL)
	before := e.snapshot(topic)

	_, err := e.s.Commit(e.ctx, commitOf(a, 1, its[1:3]))
	e.wantErr(err, baton.ErrFenced, "zombie Commit under epoch %d after epoch %d acquired [C2]", a.Epoch, b.Epoch)
	e.unchanged("a zombie commit", topic, before)
	e.commit(b, 1, its[1:])
}

func testCommitAfterExpiry(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 3)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:1])
	a = e.lapse(a)
	before := e.snapshot(topic)
	_, err := e.s.Commit(e.ctx, commitOf(a, 1, its[1:]))
	e.wantErr(err, baton.ErrFenced, "Commit after the lease lapsed, nobody else acquired [C2]")
	e.unchanged("a commit after expiry", topic, before)
}

func testCommitAfterRelease(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 3)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:1])
	e.release(a, baton.ReasonReleased)
	before := e.snapshot(topic)
	_, err := e.s.Commit(e.ctx, commitOf(a, 1, its[1:]))
	e.wantErr(err, baton.ErrFenced, "Commit after Release [C2]")
	e.unchanged("a commit after Release", topic, before)
	r := e.onlyRecord("after a fenced commit", e.handovers(topic), a.Epoch)
	e.checkRecord("after a fenced commit", r, a, baton.ReasonReleased, 1, its[0].Hash)
}

func testCommitNotTheHolder(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 2)

	never := baton.Lease{Topic: topic, Holder: "node-a", Epoch: 1}
	_, err := e.s.Commit(e.ctx, commitOf(never, 0, its))
	e.wantErr(err, baton.ErrFenced, "Commit on a topic never locked [C2]")

	a := e.acquire(topic, "node-a", liveTTL)
	before := e.snapshot(topic)
	wrongHolder := a
	wrongHolder.Holder = "node-x"
	_, err = e.s.Commit(e.ctx, commitOf(wrongHolder, 0, its))
	e.wantErr(err, baton.ErrFenced, "Commit with the live epoch by another holder [C2]")
	future := a
	future.Epoch = a.Epoch + 1
	_, err = e.s.Commit(e.ctx, commitOf(future, 0, its))
	e.wantErr(err, baton.ErrFenced, "Commit with an epoch never handed out [C2]")
	e.unchanged("commits by a node that does not hold the lease", topic, before)
	e.commit(a, 0, its)
}

func testCommitWrongPrevSeq(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 6)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:2])
	before := e.snapshot(topic)

	_, err := e.s.Commit(e.ctx, commitOf(a, 0, its[:2]))
	e.wantErr(err, baton.ErrCursorMoved, "Commit of items 1..2 again with PrevSeq 0")
	_, err = e.s.Commit(e.ctx, commitOf(a, 1, its[1:3]))
	e.wantErr(err, baton.ErrCursorMoved, "Commit with PrevSeq 1 behind the cursor 2")
	_, err = e.s.Commit(e.ctx, commitOf(a, 3, its[3:5]))
	e.wantErr(err, baton.ErrCursorMoved, "Commit with PrevSeq 3 ahead of the cursor 2 (skipping item 3)")
	e.unchanged("commits with a wrong PrevSeq", topic, before)
	if st := e.lock(topic); !st.Held || st.Lease.Epoch != a.Epoch {
		e.t.Fatalf("ErrCursorMoved ended the lease: %+v", st)
	}
	e.commit(a, 2, its[2:])
}

func testCommitMalformed(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 4)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:1])
	before := e.snapshot(topic)
	rest := its[1:] // seqs 2..4, committable after PrevSeq 1

	tampered := rest[0]
	tampered.Hash = baton.Hash{0xba, 0xd0}
	beyond := rest[2]
	beyond.Seq = 5 // never appended

	// field is the field the error names (baton.InvalidError), "" where
	// only the store can tell (the item is not in the queue as given).
	cases := []struct {
		name, field string
		make        func() baton.Commit
	}{
		{"no items", "items", func() baton.Commit { return commitOf(a, 1, nil) }},
		{"a gap between items", "items[1].seq", func() baton.Commit { return commitOf(a, 1, []baton.Item{rest[0], rest[2]}) }},
		{"items not starting at PrevSeq+1", "items[0].seq", func() baton.Commit { return commitOf(a, 1, rest[1:]) }},
		{"items out of order", "items[0].seq", func() baton.Commit { return commitOf(a, 1, []baton.Item{rest[1], rest[0]}) }},
		{"an item repeated", "items[1].seq", func() baton.Commit { return commitOf(a, 1, []baton.Item{rest[0], rest[0]}) }},
		{"an item whose hash is not the queue's", "", func() baton.Commit {
			return commitOf(a, 1, []baton.Item{tampered, rest[1]})
		}},
		{"an item beyond the queue", "", func() baton.Commit {
			return commitOf(a, 1, []baton.Item{rest[0], rest[1], rest[2], beyond})
		}},
		{"an empty holder", "holder", func() baton.Commit {
			c := commitOf(a, 1, rest)
			c.Holder = ""
			return c
		}},
		{"no time", "at", func() baton.Commit {
			c := commitOf(a, 1, rest)
			c.At = time.Time{}
			return c
		}},
		{"an invalid topic", "topic", func() baton.Commit {
			c := commitOf(a, 1, rest)
			c.Topic = "bad topic"
			return c
		}},
	}
	for _, tc := range cases {
		_, err := e.s.Commit(e.ctx, tc.make())
		e.wantErr(err, baton.ErrInvalid, "Commit with %s [C1]", tc.name)
		if tc.field != "" {
			e.wantField(err, tc.field, "Commit with %s [C1]", tc.name)
		}
		e.unchanged(fmt.Sprintf("a commit with %s", tc.name), topic, before)
	}
	e.commit(a, 1, rest)
}

// testResumeAfterHandover is the resume step (docs/design.md, step 5): the
// new holder reads the cursor, finds its hash in the index, and the items
// after it are exactly the unpublished ones.
func testResumeAfterHandover(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 7)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:2])
	e.commit(a, 2, its[2:4])
	a = e.lapse(a)

	b := e.acquire(topic, "node-b", liveTTL)
	r := e.onlyRecord("after the hand-over", e.handovers(topic), a.Epoch)
	cur := e.cursor(topic)
	if r.LastSeq != cur.Seq || r.LastHash != cur.Hash {
		e.t.Fatalf("record holds (%d, %s), the cursor is (%d, %s) [L5]", r.LastSeq, r.LastHash, cur.Seq, cur.Hash)
	}
	seq, err := e.s.SeqOfHash(e.ctx, topic, cur.Hash)
	e.noErr(err, "SeqOfHash(cursor hash)")
	if seq != cur.Seq || seq != 4 {
		e.t.Fatalf("SeqOfHash(cursor hash) = %d, cursor seq %d, want 4", seq, cur.Seq)
	}
	unpublished := e.items(topic, seq, pageAll)
	e.checkItems("items after the resume point", unpublished, its[4:])
	e.commit(b, seq, unpublished)
	e.checkPublished("Published by the successor", e.published(topic, 4, pageAll), its[4:], b)

	// Across the whole topic: every item published exactly once, in order.
	all := e.published(topic, 0, pageAll)
	if len(all) != len(its) {
		e.t.Fatalf("Published: %d items, want %d", len(all), len(its))
	}
	for i, p := range all {
		if p.Seq != uint64(i+1) {
			e.t.Fatalf("Published[%d] has seq %d", i, p.Seq)
		}
	}
	leaves := e.leaves(topic, 0, pageAll)
	if len(leaves) != len(its) {
		e.t.Fatalf("Leaves: %d, want %d", len(leaves), len(its))
	}
	for i, lf := range leaves {
		want := a.Epoch
		if i >= 4 {
			want = b.Epoch
		}
		if lf.Seq != uint64(i+1) || lf.Epoch != want {
			e.t.Fatalf("leaf %d: seq %d epoch %d, want seq %d epoch %d", i, lf.Seq, lf.Epoch, i+1, want)
		}
	}
}

func trimTests() []test {
	return []test{
		{"DeletesPublishedBelow", testTrimDeletesPublishedBelow},
		{"StopsAtCursor", testTrimStopsAtCursor},
		{"NothingPublished", testTrimNothingPublished},
	}
}

func testTrimDeletesPublishedBelow(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 10)
	a := e.acquire(topic, "node-a", liveTTL)
	c := commitOf(a, 0, its[:6])
	_, err := e.s.Commit(e.ctx, c)
	e.noErr(err, "Commit 1..6")

	n, err := e.s.Trim(e.ctx, topic, 4)
	e.noErr(err, "Trim(before 4)")
	if n != 3 {
		e.t.Fatalf("Trim(before 4) deleted %d, want 3 [T1]", n)
	}
	if ti := e.topicInfo(topic); ti.FirstSeq != 4 || ti.LastSeq != 10 {
		e.t.Fatalf("Topic after Trim = %+v, want FirstSeq 4, LastSeq 10 [T2]", ti)
	}
	for _, after := range []uint64{0, 1, 2} {
		_, err := e.s.Items(e.ctx, topic, after, pageAll)
		e.wantErr(err, baton.ErrTrimmed, "Items(after %d) after Trim(before 4) [T3]", after)
		_, err = e.s.Published(e.ctx, topic, after, pageAll)
		e.wantErr(err, baton.ErrTrimmed, "Published(after %d) after Trim(before 4) [T3]", after)
	}
	e.checkItems("Items(after 3)", e.items(topic, 3, pageAll), its[3:])
	e.checkPublished("Published(after 3)", e.published(topic, 3, pageAll), its[3:6], a)
	e.checkLeaves("Leaves after Trim", e.leaves(topic, 0, pageAll), c.Leaves())
	for _, it := range its[:3] {
		_, err := e.s.SeqOfHash(e.ctx, topic, it.Hash)
		e.wantErr(err, baton.ErrNotFound, "SeqOfHash(trimmed item %d) [T2]", it.Seq)
	}
	for _, it := range its[3:] {
		if seq, err := e.s.SeqOfHash(e.ctx, topic, it.Hash); err != nil || seq != it.Seq {
			e.t.Fatalf("SeqOfHash(kept item %d) = %d, %v", it.Seq, seq, err)
		}
	}
	if n, err := e.s.Trim(e.ctx, topic, 4); err != nil || n != 0 {
		e.t.Fatalf("second Trim(before 4) = %d, %v; want 0, nil", n, err)
	}
	if n, err := e.s.Trim(e.ctx, topic, 0); err != nil || n != 0 {
		e.t.Fatalf("Trim(before 0) = %d, %v; want 0, nil", n, err)
	}
}

func testTrimStopsAtCursor(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 10)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:6])

	n, err := e.s.Trim(e.ctx, topic, 100)
	e.noErr(err, "Trim(before 100)")
	if n != 5 {
		e.t.Fatalf("Trim(before 100) with the cursor at 6 deleted %d, want 5 (1..5, keeping the cursor's item) [T1]", n)
	}
	if ti := e.topicInfo(topic); ti.FirstSeq != 6 || ti.LastSeq != 10 {
		e.t.Fatalf("Topic after Trim = %+v, want FirstSeq 6, LastSeq 10 [T1, T2]", ti)
	}
	cur := e.cursor(topic)
	seq, err := e.s.SeqOfHash(e.ctx, topic, cur.Hash)
	if err != nil || seq != 6 {
		e.t.Fatalf("SeqOfHash(cursor hash) after Trim = %d, %v: the resume point must stay [T1]", seq, err)
	}
	e.checkItems("unpublished items after Trim", e.items(topic, 6, pageAll), its[6:])
	e.checkItems("Items(after 5) after Trim", e.items(topic, 5, pageAll), its[5:])
	_, err = e.s.Items(e.ctx, topic, 4, pageAll)
	e.wantErr(err, baton.ErrTrimmed, "Items(after 4) after trimming 1..5 [T3]")

	// Publishing goes on, and a later Trim follows the cursor.
	e.commit(a, 6, its[6:8])
	n, err = e.s.Trim(e.ctx, topic, 100)
	e.noErr(err, "second Trim(before 100)")
	if n != 2 {
		e.t.Fatalf("second Trim with the cursor at 8 deleted %d, want 2 [T1]", n)
	}
	e.checkItems("items after the second Trim", e.items(topic, 7, pageAll), its[7:])
	if ls := e.leaves(topic, 0, pageAll); len(ls) != 8 {
		e.t.Fatalf("Leaves after trims: %d, want 8 (leaves are never trimmed) [T2]", len(ls))
	}
}

func testTrimNothingPublished(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 3)
	n, err := e.s.Trim(e.ctx, topic, 100)
	e.noErr(err, "Trim with nothing published")
	if n != 0 {
		e.t.Fatalf("Trim with nothing published deleted %d unpublished items [T1]", n)
	}
	e.checkItems("Items", e.items(topic, 0, pageAll), its)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:1])
	if n, err := e.s.Trim(e.ctx, topic, 100); err != nil || n != 0 {
		e.t.Fatalf("Trim with the cursor at the first item = %d, %v; want 0 (the cursor's item stays) [T1]", n, err)
	}
}
