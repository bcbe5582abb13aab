package storetest

import (
	"slices"
	"time"

	"github.com/baton-pub/baton"
)

// # Decisions: topic lifecycle (see baton.Lifecycle)
//
//   - D1 DeleteTopic reports the queue's items (published or not), the
//     unpublished ones, the lock's epoch and the ledger size kept. It
//     writes the release record of a live lease, reason deleted, with the
//     cursor. After it the topic is not in Topics, Topic and Retention are
//     ErrNotFound, the lock is not held, and a second DeleteTopic is
//     ErrNotFound.
//   - D2 A lease live at the delete is fenced: its Commit and its
//     AddCheckpoint are ErrFenced, and Acquire of the deleted topic is
//     ErrNotFound (nothing brings it back but an Append).
//   - D3 By default the ledger stays: Leaves, Checkpoints and Handovers
//     read as before (with the delete's record). The rest reads as an unknown topic's: Items and Published
//     empty, Cursor zero, SeqOfHash ErrNotFound.
//   - D4 An Append after the delete creates the topic again (SignalTopic):
//     the cursor is the kept ledger's head again and the queue continues
//     at cursor+1 (seq 1 if the ledger went), reads below it ErrTrimmed;
//     msg ids of the deleted queue are not duplicates any more; the next
//     Acquire gets the deleted lock's epoch plus one, and its commit
//     (after the cursor) extends the ledger.
//   - D5 With DeleteOptions.Ledger the leaves, the checkpoints, the release
//     records and the cursor go too.
//   - D6 DeleteTopic of an unknown topic is ErrNotFound, of an invalid name
//     ErrInvalid; neither creates anything.
//   - D7 DeleteTopic wakes the topic's SignalLock, SignalAppend and
//     SignalCommit subscribers, and SignalTopic subscribers of "".
//   - R1 Retention of a topic with none set is the zero Retention;
//     SetRetention replaces it and wakes SignalLock; it is checked with
//     baton.ValidateRetention (ErrInvalid naming "items" or "age"); both are
//     ErrNotFound for an unknown topic; a delete drops it.
func topicTests() []test {
	return []test{
		{"DeleteKeepsLedger", testDeleteKeepsLedger},
		{"DeleteFencesHolder", testDeleteFencesHolder},
		{"RecreateContinuesLedger", testRecreateContinuesLedger},
		{"DeleteLedger", testDeleteLedger},
		{"DeleteUnknown", testDeleteUnknown},
		{"DeleteSignals", testDeleteSignals},
		{"Retention", testRetention},
	}
}

// published5 appends 5 items to a new topic and publishes the first 3
// under a live lease, with a checkpoint of size 3.
// It returns the commit's leaves.
func (e *env) published5() (topic string, l baton.Lease, its []baton.Item, leaves []baton.Leaf) {
	e.t.Helper()
	topic = e.topic("")
	its = e.appendN(topic, 5)
	l = e.acquire(topic, "node-a", liveTTL)
	c := commitOf(l, 0, its[:3])
	cp := checkpointOf(l, 3)
	c.Checkpoint = &cp
	_, err := e.s.Commit(e.ctx, c)
	e.noErr(err, "Commit(3 items with a checkpoint)")
	return topic, l, its, c.Leaves()
}

func (e *env) deleteTopic(topic string, ledger bool) baton.Deletion {
	e.t.Helper()
	d, err := e.s.DeleteTopic(e.ctx, topic, baton.DeleteOptions{Ledger: ledger})
	e.noErr(err, "DeleteTopic(%s, ledger %v)", topic, ledger)
	return d
}

func testDeleteKeepsLedger(e *env) {
	topic, l, its, leaves := e.published5()
	d := e.deleteTopic(topic, false)
	want := baton.Deletion{Topic: topic, Items: 5, Unpublished: 2, Epoch: l.Epoch, LedgerSize: 3}
	if d != want {
		e.t.Fatalf("DeleteTopic = %+v, want %+v [D1]", d, want)
	}
	if slices.Contains(e.topics(), topic) {
		e.t.Fatalf("Topics lists %s after its delete [D1]", topic)
	}
	_, err := e.s.Topic(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Topic after delete [D1]")
	_, err = e.s.Retention(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Retention after delete [D1]")
	recs := e.handovers(topic)
	if len(recs) != 1 {
		e.t.Fatalf("Handovers after delete: %d records, want the delete's [D1]", len(recs))
	}
	e.checkRecord("the delete's record [D1]", recs[0], l, baton.ReasonDeleted, 3, its[2].Hash)
	if st := e.lock(topic); st.Held {
		e.t.Fatalf("Lock after delete: held by %s epoch %d [D1]", st.Lease.Holder, st.Lease.Epoch)
	}
	_, err = e.s.DeleteTopic(e.ctx, topic, baton.DeleteOptions{})
	e.wantErr(err, baton.ErrNotFound, "second DeleteTopic [D1]")

	// D3: the ledger stays; the rest reads as an unknown topic's.
	e.checkLeaves("Leaves after delete [D3]", e.leaves(topic, 0, pageAll), leaves)
	cp, err := e.s.Checkpoint(e.ctx, topic)
	e.noErr(err, "Checkpoint after delete [D3]")
	if cp.Size != 3 {
		e.t.Fatalf("Checkpoint after delete: size %d, want 3 [D3]", cp.Size)
	}
	if cur := e.cursor(topic); cur.Seq != 0 {
		e.t.Fatalf("Cursor after delete: seq %d, want 0 [D3]", cur.Seq)
	}
	_, err = e.s.SeqOfHash(e.ctx, topic, its[2].Hash)
	e.wantErr(err, baton.ErrNotFound, "SeqOfHash after delete [D3]")
	for _, after := range []uint64{0, 2, 3} {
		if got := e.items(topic, after, pageAll); len(got) != 0 {
			e.t.Fatalf("Items after %d, after delete: %d items, want none [D3]", after, len(got))
		}
		if got := e.published(topic, after, pageAll); len(got) != 0 {
			e.t.Fatalf("Published after %d, after delete: %d items, want none [D3]", after, len(got))
		}
	}
}

func testDeleteFencesHolder(e *env) {
	topic, l, its, _ := e.published5()
	e.deleteTopic(topic, false)
	_, err := e.s.Commit(e.ctx, commitOf(l, 3, its[3:]))
	e.wantErr(err, baton.ErrFenced, "Commit of the deleted topic's lease [D2]")
	err = e.s.AddCheckpoint(e.ctx, checkpointOf(l, 3))
	e.wantErr(err, baton.ErrFenced, "AddCheckpoint of the deleted topic's lease [D2]")
	_, err = e.s.Acquire(e.ctx, topic, e.nodeLease("node-b", liveTTL))
	e.wantErr(err, baton.ErrNotFound, "Acquire of a deleted topic [D2]")
	if slices.Contains(e.topics(), topic) {
		e.t.Fatalf("Topics lists %s after an Acquire of the deleted topic [D2]", topic)
	}
	if e.leaves(topic, 0, pageAll)[2].Seq != 3 || len(e.leaves(topic, 0, pageAll)) != 3 {
		e.t.Fatal("the fenced commit changed the ledger [D2]")
	}
}

func testRecreateContinuesLedger(e *env) {
	topic, l, its, leaves := e.published5()
	e.deleteTopic(topic, false)
	topicSub := e.subscribe("", baton.SignalTopic)
	// Msg ids of the deleted queue (published or not) are fresh again.
	ups := []baton.Update{
		{ID: its[0].ID, Value: its[0].Value, MsgID: its[0].MsgID},
		{ID: its[4].ID, Value: its[4].Value, MsgID: its[4].MsgID},
	}
	rs := e.append(topic, ups)
	e.wake(topicSub, "an Append re-creating a deleted topic [D4]")
	for i, r := range rs {
		if r.Duplicate || r.Seq != uint64(4+i) {
			e.t.Fatalf("receipt %d after re-creation: seq %d duplicate %v, want seq %d fresh [D4]", i, r.Seq, r.Duplicate, 4+i)
		}
	}
	if !slices.Contains(e.topics(), topic) {
		e.t.Fatalf("Topics does not list %s after its re-creation [D4]", topic)
	}
	if ti := e.topicInfo(topic); ti.FirstSeq != 4 || ti.LastSeq != 5 {
		e.t.Fatalf("Topic after re-creation: first %d last %d, want 4 5 [D4]", ti.FirstSeq, ti.LastSeq)
	}
	if cur := e.cursor(topic); cur.Seq != 3 || cur.Hash != its[2].Hash {
		e.t.Fatalf("Cursor after re-creation: seq %d hash %s, want 3 %s [D4]", cur.Seq, cur.Hash, its[2].Hash)
	}
	_, err := e.s.Items(e.ctx, topic, 0, pageAll)
	e.wantErr(err, baton.ErrTrimmed, "Items after 0, after re-creation [D4]")
	l2 := e.acquire(topic, "node-b", liveTTL)
	if l2.Epoch != l.Epoch+1 {
		e.t.Fatalf("Acquire after re-creation: epoch %d, want %d [D4]", l2.Epoch, l.Epoch+1)
	}
	fresh := e.items(topic, 3, pageAll)
	c := commitOf(l2, 3, fresh)
	var cur baton.Cursor
	cur, err = e.s.Commit(e.ctx, c)
	e.noErr(err, "Commit after re-creation [D4]")
	if cur.Seq != 5 {
		e.t.Fatalf("cursor after re-creation's commit: %d, want 5 [D4]", cur.Seq)
	}
	e.checkLeaves("Leaves after re-creation [D4]", e.leaves(topic, 0, pageAll), append(leaves, c.Leaves()...))
	if ps := e.published(topic, 3, pageAll); len(ps) != 2 || ps[0].Seq != 4 {
		e.t.Fatalf("Published after re-creation: %d items, want 2 from seq 4 [D4]", len(ps))
	}
}

func testDeleteLedger(e *env) {
	topic, l, _, _ := e.published5()
	d := e.deleteTopic(topic, true)
	if d.LedgerSize != 0 || !d.LedgerDeleted || d.Items != 5 {
		e.t.Fatalf("DeleteTopic(ledger) = %+v, want 5 items, ledger deleted [D5]", d)
	}
	if got := e.leaves(topic, 0, pageAll); len(got) != 0 {
		e.t.Fatalf("Leaves after a ledger delete: %d, want none [D5]", len(got))
	}
	_, err := e.s.Checkpoint(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Checkpoint after a ledger delete [D5]")
	if cur := e.cursor(topic); cur.Seq != 0 {
		e.t.Fatalf("Cursor after a ledger delete: seq %d, want 0 [D5]", cur.Seq)
	}
	if recs := e.handovers(topic); len(recs) != 0 {
		e.t.Fatalf("Handovers after a ledger delete: %d records, want none [D5]", len(recs))
	}
	rs := e.append(topic, newUpdates(e.t, 2))
	if rs[0].Seq != 1 {
		e.t.Fatalf("first seq after a ledger delete: %d, want 1 [D4]", rs[0].Seq)
	}
	if l2 := e.acquire(topic, "node-b", liveTTL); l2.Epoch != l.Epoch+1 {
		e.t.Fatalf("Acquire after a ledger delete: epoch %d, want %d [D4]", l2.Epoch, l.Epoch+1)
	}
	if ps := e.published(topic, 0, pageAll); len(ps) != 0 {
		e.t.Fatalf("Published after a ledger delete: %d items, want none", len(ps))
	}
}

func testDeleteUnknown(e *env) {
	topic := e.topic("")
	_, err := e.s.DeleteTopic(e.ctx, topic, baton.DeleteOptions{})
	e.wantErr(err, baton.ErrNotFound, "DeleteTopic of an unknown topic [D6]")
	_, err = e.s.DeleteTopic(e.ctx, "-bad", baton.DeleteOptions{})
	e.wantField(err, "topic", "DeleteTopic of an invalid name [D6]")
	if slices.Contains(e.topics(), topic) {
		e.t.Fatalf("DeleteTopic of an unknown topic created it [D6]")
	}
}

func testDeleteSignals(e *env) {
	topic, _, _, _ := e.published5()
	subs := map[string]baton.Subscription{
		"SignalLock":   e.subscribe(topic, baton.SignalLock),
		"SignalAppend": e.subscribe(topic, baton.SignalAppend),
		"SignalCommit": e.subscribe(topic, baton.SignalCommit),
		"SignalTopic":  e.subscribe("", baton.SignalTopic),
	}
	e.deleteTopic(topic, false)
	for name, sub := range subs {
		e.wake(sub, "DeleteTopic, "+name+" [D7]")
	}
}

func testRetention(e *env) {
	topic := e.topic("")
	_, err := e.s.Retention(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Retention of an unknown topic [R1]")
	err = e.s.SetRetention(e.ctx, topic, baton.Retention{Items: 5})
	e.wantErr(err, baton.ErrNotFound, "SetRetention of an unknown topic [R1]")
	e.appendN(topic, 1)
	r, err := e.s.Retention(e.ctx, topic)
	e.noErr(err, "Retention")
	if r != (baton.Retention{}) {
		e.t.Fatalf("Retention of a new topic = %+v, want the zero value [R1]", r)
	}
	sub := e.subscribe(topic, baton.SignalLock)
	for _, want := range []baton.Retention{
		{Items: 100, Age: 24 * time.Hour},
		{Items: baton.Unlimited, Age: 1500 * time.Millisecond},
		{Age: baton.Unlimited},
		{},
	} {
		e.noErr(e.s.SetRetention(e.ctx, topic, want), "SetRetention(%+v)", want)
		e.wake(sub, "SetRetention [R1]")
		got, err := e.s.Retention(e.ctx, topic)
		e.noErr(err, "Retention")
		if got != want {
			e.t.Fatalf("Retention = %+v, want %+v [R1]", got, want)
		}
	}
	for _, bad := range []struct {
		r     baton.Retention
		field string
	}{
		{baton.Retention{Items: -2}, "items"},
		{baton.Retention{Items: baton.MaxRetainItems + 1}, "items"},
		{baton.Retention{Age: time.Millisecond}, "age"},
		{baton.Retention{Age: time.Second + time.Nanosecond}, "age"},
		{baton.Retention{Age: -5}, "age"},
	} {
		err := e.s.SetRetention(e.ctx, topic, bad.r)
		e.wantField(err, bad.field, "SetRetention(%+v) [R1]", bad.r)
	}
	e.noErr(e.s.SetRetention(e.ctx, topic, baton.Retention{Items: 7}), "SetRetention")
	e.deleteTopic(topic, false)
	e.appendN(topic, 1)
	if r, err := e.s.Retention(e.ctx, topic); err != nil || r != (baton.Retention{}) {
		e.t.Fatalf("Retention after delete and re-creation = %+v, %v; want the zero value [R1]", r, err)
	}
}

// testSharedDelete: a delete through one handle is seen and signalled
// through the other, and an Append through the other (which knew the
// topic before) brings it back into Topics [D1, D4, D7].
func testSharedDelete(p *pair) {
	a, b := p.a, p.b
	topic, l, its, _ := a.published5()
	b.appendN(topic, 1) // b knows the topic
	subTopic := b.subscribe("", baton.SignalTopic)
	subLock := b.subscribe(topic, baton.SignalLock)
	a.deleteTopic(topic, false)
	b.wake(subTopic, "DeleteTopic through the other handle, SignalTopic [D7]")
	b.wake(subLock, "DeleteTopic through the other handle, SignalLock [D7]")
	if slices.Contains(b.topics(), topic) {
		b.t.Fatalf("Topics through b lists %s after its delete through a [D1]", topic)
	}
	_, err := b.s.Commit(b.ctx, commitOf(l, 3, its[3:]))
	b.wantErr(err, baton.ErrFenced, "Commit through b of the deleted topic's lease [D2]")
	_, err = b.s.Acquire(b.ctx, topic, b.nodeLease("node-b", liveTTL))
	b.wantErr(err, baton.ErrNotFound, "Acquire through b of a deleted topic [D2]")
	rs := b.append(topic, newUpdates(b.t, 1))
	if rs[0].Seq != 4 {
		b.t.Fatalf("Append through b after the delete: seq %d, want 4 [D4]", rs[0].Seq)
	}
	for _, e := range []*env{a, b} {
		if !slices.Contains(e.topics(), topic) {
			e.t.Fatalf("Topics does not list %s after its re-creation through b [D4]", topic)
		}
	}
}
