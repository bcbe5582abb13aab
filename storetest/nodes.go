package storetest

import (
	"fmt"
	"slices"
	"time"

	"github.com/baton-pub/baton"
)

// Node leases: decisions N1..N8 in storetest.go.
func nodeTests() []test {
	return []test{
		{"AcquireNodeFresh", testAcquireNodeFresh},
		{"AcquireNodeWhileLive", testAcquireNodeWhileLive},
		{"RenewNodeRenewsEveryLease", testRenewNodeRenewsEveryLease},
		{"RenewNodeStaleOrUnknown", testRenewNodeStaleOrUnknown},
		{"LapsedNodeFencesEveryLock", testLapsedNodeFencesEveryLock},
		{"ReleaseNodeReleasesAll", testReleaseNodeReleasesAll},
		{"ReleaseNodeCrashed", testReleaseNodeCrashed},
		{"ExpireNode", testExpireNode},
		{"AcquireNodeOverLapsed", testAcquireNodeOverLapsed},
		{"AcquireUnderDeadNodeLease", testAcquireUnderDeadNodeLease},
		{"NodeLeasesListed", testNodeLeasesListed},
	}
}

func testAcquireNodeFresh(e *env) {
	node := e.name("node-a")
	nl, err := e.s.AcquireNode(e.ctx, node, liveTTL)
	e.noErr(err, "AcquireNode")
	if nl.Node != node || nl.Epoch != 1 {
		e.t.Fatalf("node lease {%s epoch %d}, want {%s epoch 1} [N1]", nl.Node, nl.Epoch, node)
	}
	e.checkNow("AcquiredAt", nl.AcquiredAt)
	if d := nl.ExpiresAt.Sub(nl.AcquiredAt); !nearDur(d, liveTTL, timeSlack) {
		e.t.Fatalf("ExpiresAt-AcquiredAt = %v, want the ttl %v [N1]", d, liveTTL)
	}
	if nl.Remaining <= 0 || nl.Remaining > liveTTL+timeSlack {
		e.t.Fatalf("Remaining = %v, want in (0, %v] [N1]", nl.Remaining, liveTTL)
	}
	l, err := e.s.Acquire(e.ctx, e.topic(""), nl)
	e.noErr(err, "Acquire under the node lease")
	if l.Holder != node || l.NodeEpoch != nl.Epoch || !near(l.ExpiresAt, nl.ExpiresAt, timeSlack) {
		e.t.Fatalf("lease %+v, want held by %s under node epoch %d until %v [N2]", l, node, nl.Epoch, nl.ExpiresAt)
	}
}

func testAcquireNodeWhileLive(e *env) {
	nl := e.nodeLease("node-a", liveTTL)
	_, err := e.s.AcquireNode(e.ctx, nl.Node, liveTTL)
	e.wantErr(err, baton.ErrLeaseHeld, "AcquireNode while the node's lease is live [N1]")
	if _, err := e.s.RenewNode(e.ctx, nl, liveTTL); err != nil {
		e.t.Fatalf("the refused AcquireNode ended the live node lease: RenewNode: %v", err)
	}
}

func testRenewNodeRenewsEveryLease(e *env) {
	topics := []string{e.topic("1"), e.topic("2"), e.topic("3")}
	var leases []baton.Lease
	for _, t := range topics {
		leases = append(leases, e.acquire(t, "node-a", liveTTL))
	}
	nl := e.nodeLease("node-a", liveTTL)
	r, err := e.s.RenewNode(e.ctx, nl, 2*liveTTL)
	e.noErr(err, "RenewNode")
	if r.Node != nl.Node || r.Epoch != nl.Epoch || !near(r.AcquiredAt, nl.AcquiredAt, timeSlack) {
		e.t.Fatalf("renewed node lease %+v changed identity or AcquiredAt of %+v [N3]", r, nl)
	}
	if r.ExpiresAt.Sub(nl.ExpiresAt) < liveTTL-time.Second {
		e.t.Fatalf("RenewNode to %v: ExpiresAt %v, was %v [N3]", 2*liveTTL, r.ExpiresAt, nl.ExpiresAt)
	}
	for i, t := range topics {
		st := e.lock(t)
		if !st.Held || st.Lease.Epoch != leases[i].Epoch || !near(st.Lease.ExpiresAt, r.ExpiresAt, timeSlack) {
			e.t.Fatalf("Lock(%s) after RenewNode = %+v, want epoch %d held until %v [N3]", t, st, leases[i].Epoch, r.ExpiresAt)
		}
		if recs := e.handovers(t); len(recs) != 0 {
			e.t.Fatalf("RenewNode wrote release records: %+v", recs)
		}
	}
}

func testRenewNodeStaleOrUnknown(e *env) {
	nl := e.nodeLease("node-a", liveTTL)
	_, err := e.s.ReleaseNode(e.ctx, nl, baton.ReasonReleased)
	e.noErr(err, "ReleaseNode")
	_, err = e.s.RenewNode(e.ctx, nl, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "RenewNode of a released node lease [N3]")
	next, err := e.s.AcquireNode(e.ctx, nl.Node, liveTTL)
	e.noErr(err, "AcquireNode after ReleaseNode")
	if next.Epoch != nl.Epoch+1 {
		e.t.Fatalf("node epoch after release = %d, want %d [N1]", next.Epoch, nl.Epoch+1)
	}
	_, err = e.s.RenewNode(e.ctx, nl, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "RenewNode of a stale node epoch [N3]")
	future := next
	future.Epoch++
	_, err = e.s.RenewNode(e.ctx, future, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "RenewNode of a node epoch never handed out [N3]")
	_, err = e.s.RenewNode(e.ctx, baton.NodeLease{Node: e.name("node-unknown"), Epoch: 1}, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "RenewNode of an unknown node [N3]")
	if _, err := e.s.RenewNode(e.ctx, next, liveTTL); err != nil {
		e.t.Fatalf("refused renewals ended the live node lease: %v", err)
	}
}

// testLapsedNodeFencesEveryLock: when a node lease lapses, every lock under
// it is free and every write under it fenced, whatever the topic.
func testLapsedNodeFencesEveryLock(e *env) {
	topics := []string{e.topic("1"), e.topic("2"), e.topic("3")}
	var leases []baton.Lease
	var items [][]baton.Item
	for _, t := range topics {
		items = append(items, e.appendN(t, 2))
		leases = append(leases, e.acquire(t, "node-a", liveTTL))
	}
	e.commit(leases[0], 0, items[0][:1])
	lapsed := e.lapse(leases[0])
	// On Redis Cluster each bucket holds its own copy of the node lease,
	// pushed a few milliseconds apart, so a copy may outlive the first by
	// that much (redis/doc.go): each lock must come free, not at one
	// instant. A lock that stays held fails here.
	for _, t := range topics {
		e.waitFor(fmt.Sprintf("Lock(%s) free after its node lease lapsed [N4]", t), func() bool {
			return !e.lock(t).Held
		})
	}
	for i, t := range topics {
		if st := e.lock(t); st.Held {
			e.t.Fatalf("Lock(%s) after its node lease lapsed = %+v, want not held [N4]", t, st)
		}
		prev := uint64(0)
		if i == 0 {
			prev = 1
		}
		_, err := e.s.Commit(e.ctx, baton.Commit{Topic: t, Epoch: leases[i].Epoch, Holder: leases[i].Holder,
			PrevSeq: prev, Items: items[i][prev:], At: time.Now()})
		e.wantErr(err, baton.ErrFenced, "Commit to %s under a lapsed node lease [N4]", t)
	}
	b := e.acquire(topics[1], "node-b", liveTTL)
	if b.Epoch != leases[1].Epoch+1 {
		e.t.Fatalf("epoch after the node lease lapsed = %d, want %d", b.Epoch, leases[1].Epoch+1)
	}
	r := e.onlyRecord("after node-b acquired", e.handovers(topics[1]), leases[1].Epoch)
	e.checkRecord("after node-b acquired", r, withExpiry(leases[1], lapsed.ExpiresAt), baton.ReasonExpired, 0, baton.Hash{})
	e.checkSuccessor("after node-b acquired", r, b)
}

func withExpiry(l baton.Lease, at time.Time) baton.Lease {
	l.ExpiresAt = at
	return l
}

func testReleaseNodeReleasesAll(e *env) {
	topics := []string{e.topic("1"), e.topic("2"), e.topic("3")}
	var leases []baton.Lease
	var subs []baton.Subscription
	var freed []baton.Subscription
	for _, t := range topics {
		leases = append(leases, e.acquire(t, "node-a", liveTTL))
		subs = append(subs, e.subscribe(t, baton.SignalLock))
		freed = append(freed, e.subscribe(t, baton.SignalFreed))
	}
	items := e.appendN(topics[0], 1)
	e.commit(leases[0], 0, items)
	nodes := e.subscribe("", baton.SignalNode)
	nl := e.nodeLease("node-a", liveTTL)
	recs, err := e.s.ReleaseNode(e.ctx, nl, baton.ReasonReleased)
	e.noErr(err, "ReleaseNode")
	if len(recs) != len(topics) {
		e.t.Fatalf("ReleaseNode returned %d records, want one per topic (%d): %+v [N5]", len(recs), len(topics), recs)
	}
	for i, t := range topics {
		e.wake(subs[i], "ReleaseNode, on "+t)
		e.wake(freed[i], "ReleaseNode, SignalFreed on "+t)
		if st := e.lock(t); st.Held {
			e.t.Fatalf("Lock(%s) after ReleaseNode = %+v, want not held [N5]", t, st)
		}
		var lastSeq uint64
		var lastHash baton.Hash
		if i == 0 {
			lastSeq, lastHash = items[0].Seq, items[0].Hash
		}
		r := e.onlyRecord("after ReleaseNode", e.handovers(t), leases[i].Epoch)
		e.checkRecord("after ReleaseNode", r, leases[i], baton.ReasonReleased, lastSeq, lastHash)
		if !slices.ContainsFunc(recs, func(x baton.ReleaseRecord) bool { return x.Topic == t && x.Epoch == r.Epoch }) {
			e.t.Fatalf("ReleaseNode's records %+v lack %s epoch %d [N5]", recs, t, r.Epoch)
		}
	}
	e.wake(nodes, "ReleaseNode")
	_, err = e.s.ReleaseNode(e.ctx, nl, baton.ReasonReleased)
	e.wantErr(err, baton.ErrLeaseLost, "a second ReleaseNode [N5]")
	_, err = e.s.ExpireNode(e.ctx, nl.Node)
	e.wantErr(err, baton.ErrNotFound, "ExpireNode after ReleaseNode [N6]")
	b := e.acquire(topics[2], "node-b", liveTTL)
	e.checkSuccessor("after ReleaseNode", e.onlyRecord("after node-b acquired", e.handovers(topics[2]), leases[2].Epoch), b)
}

// testReleaseNodeCrashed: a peer found node-a's process gone and ends its
// node lease as it read it from NodeLeases, while the lease is live.
func testReleaseNodeCrashed(e *env) {
	topics := []string{e.topic("1"), e.topic("2")}
	var leases []baton.Lease
	for _, t := range topics {
		leases = append(leases, e.acquire(t, "node-a", liveTTL))
	}
	items := e.appendN(topics[0], 2)
	e.commit(leases[0], 0, items[:1])
	own := e.nodeLease("node-a", liveTTL)
	ls, err := e.s.NodeLeases(e.ctx)
	e.noErr(err, "NodeLeases")
	i := slices.IndexFunc(ls, func(nl baton.NodeLease) bool { return nl.Node == own.Node })
	if i < 0 {
		e.t.Fatalf("NodeLeases %+v lacks %s [N9]", ls, own.Node)
	}
	err = e.s.Release(e.ctx, leases[1], baton.ReasonCrashed)
	e.wantErr(err, baton.ErrInvalid, "Release with reason crashed [N5]")
	e.wantField(err, "reason", "Release with reason crashed [N5]")
	recs, err := e.s.ReleaseNode(e.ctx, baton.NodeLease{Node: ls[i].Node, Epoch: ls[i].Epoch}, baton.ReasonCrashed)
	e.noErr(err, "ReleaseNode by a peer, reason crashed")
	if len(recs) != len(topics) {
		e.t.Fatalf("ReleaseNode(crashed) returned %d records, want %d: %+v [N5]", len(recs), len(topics), recs)
	}
	for i, t := range topics {
		if st := e.lock(t); st.Held {
			e.t.Fatalf("Lock(%s) after ReleaseNode(crashed) = %+v, want not held [N5]", t, st)
		}
		var lastSeq uint64
		var lastHash baton.Hash
		if i == 0 {
			lastSeq, lastHash = items[0].Seq, items[0].Hash
		}
		r := e.onlyRecord("after ReleaseNode(crashed)", e.handovers(t), leases[i].Epoch)
		e.checkRecord("after ReleaseNode(crashed)", r, leases[i], baton.ReasonCrashed, lastSeq, lastHash)
	}
	_, err = e.s.RenewNode(e.ctx, own, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "RenewNode of a node lease ended as crashed [N5]")
	_, err = e.s.Commit(e.ctx, baton.Commit{Topic: topics[0], Epoch: leases[0].Epoch, Holder: leases[0].Holder,
		PrevSeq: 1, Items: items[1:], At: time.Now()})
	e.wantErr(err, baton.ErrFenced, "Commit under a node lease ended as crashed [N5]")
	b := e.acquire(topics[0], "node-b", liveTTL)
	e.checkSuccessor("after ReleaseNode(crashed)", e.onlyRecord("after node-b acquired", e.handovers(topics[0]), leases[0].Epoch), b)
}

func testExpireNode(e *env) {
	_, err := e.s.ExpireNode(e.ctx, e.name("node-unknown"))
	e.wantErr(err, baton.ErrNotFound, "ExpireNode of an unknown node [N6]")
	t1, t2, t3 := e.topic("1"), e.topic("2"), e.topic("3")
	a1 := e.acquire(t1, "node-a", liveTTL)
	a2 := e.acquire(t2, "node-a", liveTTL)
	a3 := e.acquire(t3, "node-a", liveTTL)
	_, err = e.s.ExpireNode(e.ctx, a1.Holder)
	e.wantErr(err, baton.ErrLeaseHeld, "ExpireNode of a live node lease [N6]")
	e.release(a3, baton.ReasonFailed)
	nodes := e.subscribe("", baton.SignalNode)
	sub := e.subscribe(t1, baton.SignalLock)
	freed := e.subscribe(t2, baton.SignalFreed)
	lapsed := e.lapse(a1)
	recs, err := e.s.ExpireNode(e.ctx, a1.Holder)
	e.noErr(err, "ExpireNode of a lapsed node lease")
	if len(recs) != 2 {
		e.t.Fatalf("ExpireNode returned %+v, want the records of the two live leases [N6]", recs)
	}
	for _, l := range []baton.Lease{a1, a2} {
		r := e.onlyRecord("after ExpireNode", e.handovers(l.Topic), l.Epoch)
		e.checkRecord("after ExpireNode", r, withExpiry(l, lapsed.ExpiresAt), baton.ReasonExpired, 0, baton.Hash{})
	}
	if r := e.onlyRecord("after ExpireNode", e.handovers(t3), a3.Epoch); r.Reason != baton.ReasonFailed {
		e.t.Fatalf("ExpireNode rewrote the record of a released lease: %+v [N6]", r)
	}
	e.wake(sub, "ExpireNode")
	e.wake(freed, "ExpireNode, SignalFreed")
	e.wake(nodes, "ExpireNode")
	_, err = e.s.ExpireNode(e.ctx, a1.Holder)
	e.wantErr(err, baton.ErrNotFound, "a second ExpireNode [N6]")
	_, err = e.s.Expire(e.ctx, t2)
	e.wantErr(err, baton.ErrNotFound, "Expire of a topic ExpireNode recorded [L7]")
}

// testAcquireNodeOverLapsed: a node that comes back starts a new node lease
// once its old one lapsed; the old one's locks end with it, its writes stay
// fenced.
func testAcquireNodeOverLapsed(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 1)
	old := e.acquire(topic, "node-a", liveTTL)
	lapsed := e.lapse(old)
	nl := e.nodeLease("node-a", liveTTL)
	if nl.Epoch != old.NodeEpoch+1 {
		e.t.Fatalf("node epoch over a lapsed one = %d, want %d [N7]", nl.Epoch, old.NodeEpoch+1)
	}
	r := e.onlyRecord("after AcquireNode", e.handovers(topic), old.Epoch)
	e.checkRecord("after AcquireNode", r, withExpiry(old, lapsed.ExpiresAt), baton.ReasonExpired, 0, baton.Hash{})
	_, err := e.s.Commit(e.ctx, baton.Commit{Topic: topic, Epoch: old.Epoch, Holder: old.Holder, Items: its, At: time.Now()})
	e.wantErr(err, baton.ErrFenced, "Commit under the old node lease after a new one began [N7]")
	l := e.acquire(topic, "node-a", liveTTL)
	if l.Epoch != old.Epoch+1 || l.NodeEpoch != nl.Epoch {
		e.t.Fatalf("lease under the new node lease: %+v, want epoch %d node epoch %d", l, old.Epoch+1, nl.Epoch)
	}
	e.commit(l, 0, its)
}

func testAcquireUnderDeadNodeLease(e *env) {
	topic := e.topic("")
	nl := e.nodeLease("node-a", liveTTL)
	_, err := e.s.ReleaseNode(e.ctx, nl, baton.ReasonReleased)
	e.noErr(err, "ReleaseNode")
	_, err = e.s.Acquire(e.ctx, topic, nl)
	e.wantErr(err, baton.ErrLeaseLost, "Acquire under a released node lease [N8]")
	_, err = e.s.Acquire(e.ctx, topic, baton.NodeLease{Node: e.name("node-unknown"), Epoch: 1})
	e.wantErr(err, baton.ErrLeaseLost, "Acquire under an unknown node lease [N8]")
	b := e.nodeLease("node-b", liveTTL)
	stale := b
	stale.Epoch++
	_, err = e.s.Acquire(e.ctx, topic, stale)
	e.wantErr(err, baton.ErrLeaseLost, "Acquire under a node epoch never handed out [N8]")
	if st := e.lock(topic); st.Held || st.Lease.Epoch != 0 {
		e.t.Fatalf("refused Acquires took the lock: %+v", st)
	}
}

func testNodeLeasesListed(e *env) {
	t1, t2 := e.topic("1"), e.topic("2")
	e.acquire(t1, "node-a", liveTTL)
	e.acquire(t2, "node-a", liveTTL)
	b := e.nodeLease("node-b", liveTTL)
	c := e.nodeLease("node-c", liveTTL)
	_, err := e.s.ReleaseNode(e.ctx, c, baton.ReasonReleased)
	e.noErr(err, "ReleaseNode of node-c")
	all, err := e.s.NodeLeases(e.ctx)
	e.noErr(err, "NodeLeases")
	find := func(node string) (baton.NodeLease, bool) {
		i := slices.IndexFunc(all, func(nl baton.NodeLease) bool { return nl.Node == node })
		if i < 0 {
			return baton.NodeLease{}, false
		}
		return all[i], true
	}
	a, ok := find(e.name("node-a"))
	if !ok || a.Leases != 2 || a.Remaining <= 0 {
		e.t.Fatalf("NodeLeases: node-a = %+v (listed %v), want 2 leases, Remaining > 0 [N9]", a, ok)
	}
	if got, ok := find(b.Node); !ok || got.Leases != 0 || got.Epoch != b.Epoch {
		e.t.Fatalf("NodeLeases: node-b = %+v (listed %v), want epoch %d with no leases [N9]", got, ok, b.Epoch)
	}
	if got, ok := find(c.Node); ok {
		e.t.Fatalf("NodeLeases lists released node-c: %+v [N9]", got)
	}
	if !slices.IsSortedFunc(all, func(x, y baton.NodeLease) int { return compareStrings(x.Node, y.Node) }) {
		e.t.Fatalf("NodeLeases not sorted by node: %+v [N9]", all)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
