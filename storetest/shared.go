package storetest

import (
	"slices"

	"github.com/baton-pub/baton"
)

// A sharedTest runs on two handles onto the same data.
type sharedTest struct {
	name string
	fn   func(p *pair)
}

func sharedTests() []sharedTest {
	return []sharedTest{
		{"LockExclusive", testSharedLockExclusive},
		{"AppendSignalledAndVisible", testSharedAppend},
		{"CommitSignalledAndVisible", testSharedCommit},
		{"CheckpointSignalledAndVisible", testSharedCheckpoint},
		{"AppendToldOnlyToWhomItConcerns", testSharedAppendQuiet},
		{"LockSignalledAndVisible", testSharedLock},
		{"TopicSignalledAndVisible", testSharedTopic},
		{"ExpireAndFenceAcrossHandles", testSharedExpireAndFence},
		{"RaceAcquire", func(p *pair) { raceAcquire(p.a, []*env{p.a, p.b}, false) }},
		{"RaceAppend", func(p *pair) { raceAppend(p.a, []*env{p.a, p.b}) }},
		{"RaceAppendSameMsgID", func(p *pair) { raceAppendSameMsgID(p.a, []*env{p.a, p.b}) }},
		{"Members", testSharedMembers},
		{"CloseOneHandle", testSharedCloseOneHandle},
		{"DeleteTopic", testSharedDelete},
	}
}

func testSharedLockExclusive(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	l := a.acquire(topic, "node-a", liveTTL)
	_, err := b.s.Acquire(b.ctx, topic, b.nodeLease("node-b", liveTTL))
	b.wantErr(err, baton.ErrLeaseHeld, "Acquire through b while node-a holds the lock through a")
	st := b.lock(topic)
	if !st.Held || st.Lease.Holder != b.name("node-a") || st.Lease.Epoch != l.Epoch {
		b.t.Fatalf("Lock through b = %+v, want held by node-a epoch %d", st, l.Epoch)
	}
	// The holder may renew and release through either handle: the lease is
	// named by (topic, holder, epoch), not by the connection [L3].
	_, err = b.renew(l, liveTTL)
	b.noErr(err, "Renew through b of the lease acquired through a")
	b.release(l, baton.ReasonReleased)
	if st := a.lock(topic); st.Held {
		a.t.Fatalf("Lock through a after Release through b = %+v, want not held", st)
	}
}

func testSharedAppend(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	sub := b.subscribe(topic, baton.SignalAppend)
	ups := newUpdates(a.t, 3)
	rs := a.append(topic, ups)
	b.wake(sub, "Append through the other handle")
	its := b.items(topic, 0, pageAll)
	if len(its) != 3 {
		b.t.Fatalf("Items through b: %d, want 3", len(its))
	}
	for i, it := range its {
		if it.Seq != rs[i].Seq || it.Hash != rs[i].Hash || it.MsgID != ups[i].MsgID {
			b.t.Fatalf("item %d through b = {%d %s %s}, receipt through a {%d %s %s}", i, it.Seq, it.MsgID, it.Hash, rs[i].Seq, rs[i].MsgID, rs[i].Hash)
		}
		if seq, err := b.s.SeqOfHash(b.ctx, topic, it.Hash); err != nil || seq != it.Seq {
			b.t.Fatalf("SeqOfHash through b = %d, %v; want %d", seq, err, it.Seq)
		}
	}
	// A retry through the other handle is a duplicate.
	again := b.append(topic, ups[1:2])
	if !again[0].Duplicate || again[0].Seq != rs[1].Seq {
		b.t.Fatalf("retry through b: receipt %+v, want a duplicate of %+v [Q4]", again[0], rs[1])
	}
}

func testSharedCommit(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	its := a.appendN(topic, 4)
	l := a.acquire(topic, "node-a", liveTTL)
	sub := b.subscribe(topic, baton.SignalCommit)
	c := commitOf(l, 0, its[:3])
	_, err := a.s.Commit(a.ctx, c)
	a.noErr(err, "Commit through a")
	b.wake(sub, "Commit through the other handle")
	b.checkCursor("Cursor through b", b.cursor(topic), topic, its[2], l.Epoch)
	b.checkPublished("Published through b", b.published(topic, 0, pageAll), its[:3], l)
	b.checkLeaves("Leaves through b", b.leaves(topic, 0, pageAll), c.Leaves())
	// The holder's commits go through either handle, fenced the same way.
	b.commit(l, 3, its[3:])
}

func testSharedCheckpoint(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	its := a.appendN(topic, 3)
	l := a.acquire(topic, "node-a", liveTTL)
	a.commit(l, 0, its)
	sub := b.subscribe(topic, baton.SignalCheckpoint)
	cp := checkpointOf(l, 3)
	a.noErr(a.s.AddCheckpoint(a.ctx, cp), "AddCheckpoint through a")
	b.wake(sub, "AddCheckpoint through the other handle")
	got, err := b.s.Checkpoint(b.ctx, topic)
	b.noErr(err, "Checkpoint through b")
	b.checkCheckpoint("Checkpoint through b", got, cp)
}

func testSharedLock(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	sub := b.subscribe(topic, baton.SignalLock)
	l := a.acquire(topic, "node-a", liveTTL)
	b.wake(sub, "Acquire through the other handle")
	if st := b.lock(topic); !st.Held || st.Lease.Epoch != l.Epoch {
		b.t.Fatalf("Lock through b = %+v, want epoch %d held", st, l.Epoch)
	}
	a.release(l, baton.ReasonReleased)
	b.wake(sub, "Release through the other handle")
	if st := b.lock(topic); st.Held {
		b.t.Fatalf("Lock through b after Release through a = %+v, want not held", st)
	}
	r := b.onlyRecord("Handovers through b", b.handovers(topic), l.Epoch)
	b.checkRecord("Handovers through b", r, l, baton.ReasonReleased, 0, baton.Hash{})
	next := b.acquire(topic, "node-b", liveTTL)
	if next.Epoch != l.Epoch+1 {
		b.t.Fatalf("epoch through b = %d, want %d [L1]", next.Epoch, l.Epoch+1)
	}
	r = a.onlyRecord("Handovers through a", a.handovers(topic), l.Epoch)
	a.checkSuccessor("Handovers through a", r, next)
}

func testSharedTopic(p *pair) {
	a, b := p.a, p.b
	sub := b.subscribe("", baton.SignalTopic)
	topic := a.topic("")
	a.appendN(topic, 1)
	b.wake(sub, "a new topic's first Append through the other handle")
	if !slices.Contains(b.topics(), topic) {
		b.t.Fatalf("Topics through b does not list %s, appended through a", topic)
	}
}

// testSharedExpireAndFence: a's lease lapses (a paused process); b turns it
// into a record, a learns it by push, b takes over, and a's late commit is
// fenced.
func testSharedExpireAndFence(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	its := a.appendN(topic, 4)
	la := a.acquire(topic, "node-a", liveTTL)
	a.commit(la, 0, its[:1])
	subA := a.subscribe(topic, baton.SignalLock)
	la = a.lapse(la)

	rec, err := b.s.Expire(b.ctx, topic)
	b.noErr(err, "Expire through b")
	b.checkRecord("Expire through b", rec, la, baton.ReasonExpired, 1, its[0].Hash)
	a.wake(subA, "Expire through the other handle")
	r := a.onlyRecord("Handovers through a", a.handovers(topic), la.Epoch)
	a.checkRecord("Handovers through a", r, la, baton.ReasonExpired, 1, its[0].Hash)

	lb := b.acquire(topic, "node-b", liveTTL)
	_, err = a.s.Commit(a.ctx, commitOf(la, 1, its[1:3]))
	a.wantErr(err, baton.ErrFenced, "Commit through a under epoch %d after b acquired epoch %d", la.Epoch, lb.Epoch)
	if c := b.cursor(topic); c.Seq != 1 || c.Epoch != la.Epoch {
		b.t.Fatalf("a fenced commit through a moved the cursor seen through b: %+v", c)
	}
	b.commit(lb, 1, its[1:])
	a.checkPublished("Published through a", a.published(topic, 1, pageAll), its[1:], lb)
}

func testSharedMembers(p *pair) {
	a, b := p.a, p.b
	node := a.node("a")
	a.noErr(a.s.Heartbeat(a.ctx, baton.Member{Node: node, Addr: "a:1", State: baton.MemberIdle}, liveTTL), "Heartbeat through a")
	if m, ok := findMember(b.members(), node); !ok || m.Addr != "a:1" {
		b.t.Fatalf("Members through b does not list %s from a's heartbeat", node)
	}
	b.noErr(b.s.Leave(b.ctx, node), "Leave through b")
	if _, ok := findMember(a.members(), node); ok {
		a.t.Fatalf("Members through a still lists %s after it left through b", node)
	}
}

func testSharedCloseOneHandle(p *pair) {
	a, b := p.a, p.b
	topic := a.topic("")
	a.appendN(topic, 1)
	a.noErr(a.s.Close(), "Close a")
	b.noErr(b.s.Ping(b.ctx), "Ping b after a closed")
	b.appendN(topic, 1)
	if ti := b.topicInfo(topic); ti.LastSeq != 2 {
		b.t.Fatalf("LastSeq through b = %d, want 2", ti.LastSeq)
	}
}
