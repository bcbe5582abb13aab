package storetest

import (
	"time"

	"github.com/baton-pub/baton"
)

func lockTests() []test {
	return []test{
		{"AcquireFreshTopic", testAcquireFreshTopic},
		{"AcquireHeldByOther", testAcquireHeldByOther},
		{"AcquireHeldBySelf", testAcquireHeldBySelf},
		{"LockUnknownTopic", testLockUnknownTopic},
		{"LockReadsLiveLease", testLockReadsLiveLease},
		{"RenewExtends", testRenewExtends},
		{"RenewAfterTopicRelease", testRenewAfterTopicRelease},
		{"ReleaseThenAcquire", testReleaseThenAcquire},
		{"ReleaseFailedRecorded", testReleaseFailedRecorded},
		{"ReleaseInvalidReason", testReleaseInvalidReason},
		{"ReleaseNotLive", testReleaseNotLive},
		{"EpochsGrowOverHandovers", testEpochsGrowOverHandovers},
		{"ShortLeaseExpires", testShortLeaseExpires},
		{"RenewAfterExpiry", testRenewAfterExpiry},
		{"ReleaseAfterExpiry", testReleaseAfterExpiry},
		{"ExpireLiveLease", testExpireLiveLease},
		{"ExpireAfterExpiry", testExpireAfterExpiry},
		{"ExpireNothingToRecord", testExpireNothingToRecord},
		{"AcquireOverExpired", testAcquireOverExpired},
		{"OneRecordPerEpoch", testOneRecordPerEpoch},
		{"RecordHoldsCursor", testRecordHoldsCursor},
		{"AcquireReportsCursor", testAcquireReportsCursor},
		{"HandoversNewestFirstWithLimit", testHandoversNewestFirstWithLimit},
		{"InvalidInput", testLockInvalidInput},
	}
}

func testAcquireFreshTopic(e *env) {
	topic := e.topic("")
	ttl := 30 * time.Second
	l := e.acquire(topic, "node-a", ttl)
	if l.Topic != topic || l.Holder != e.name("node-a") || l.Epoch != 1 {
		e.t.Fatalf("lease {%s %s epoch %d}, want {%s node-a epoch 1} [L1]", l.Topic, l.Holder, l.Epoch, topic)
	}
	e.checkNow("AcquiredAt", l.AcquiredAt)
	// The lease's expiry is its node lease's, which began one or more round
	// trips before the lease [N2].
	if d := l.ExpiresAt.Sub(e.nodeLease("node-a", ttl).AcquiredAt); !nearDur(d, ttl, timeSlack) {
		e.t.Fatalf("ExpiresAt-AcquiredAt = %v, want the ttl %v [L2]", d, ttl)
	}
	if l.Remaining <= 0 || l.Remaining > ttl+timeSlack {
		e.t.Fatalf("Remaining = %v, want in (0, %v] [L2]", l.Remaining, ttl)
	}
}

func testAcquireHeldByOther(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)
	_, err := e.s.Acquire(e.ctx, topic, e.nodeLease("node-b", liveTTL))
	e.wantErr(err, baton.ErrLeaseHeld, "Acquire by node-b while node-a holds the lock")
	st := e.lock(topic)
	if !st.Held || st.Lease.Holder != e.name("node-a") || st.Lease.Epoch != a.Epoch {
		e.t.Fatalf("after the refused Acquire: Lock = %+v, want held by node-a epoch %d", st, a.Epoch)
	}
}

func testAcquireHeldBySelf(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)
	_, err := e.s.Acquire(e.ctx, topic, e.nodeLease("node-a", liveTTL))
	e.wantErr(err, baton.ErrLeaseHeld, "Acquire by node-a while node-a holds the lock [L2]")
	st := e.lock(topic)
	if !st.Held || st.Lease.Epoch != a.Epoch {
		e.t.Fatalf("after the refused Acquire: Lock = %+v, want epoch %d still held", st, a.Epoch)
	}
	if recs := e.handovers(topic); len(recs) != 0 {
		e.t.Fatalf("a refused Acquire wrote release records: %+v", recs)
	}
}

func testLockUnknownTopic(e *env) {
	topic := e.topic("")
	st := e.lock(topic)
	if st.Held || st.Lease != (baton.Lease{}) {
		e.t.Fatalf("Lock on a topic never locked = %+v, want not held and a zero lease [L8]", st)
	}
}

func testLockReadsLiveLease(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	st := e.lock(topic)
	if !st.Held || st.Topic != topic {
		e.t.Fatalf("Lock = %+v, want held, topic %s", st, topic)
	}
	got := st.Lease
	if got.Topic != topic || got.Holder != l.Holder || got.Epoch != l.Epoch ||
		!near(got.AcquiredAt, l.AcquiredAt, timeSlack) || !near(got.ExpiresAt, l.ExpiresAt, timeSlack) {
		e.t.Fatalf("Lock().Lease = %+v, want the acquired lease %+v", got, l)
	}
	if got.Remaining <= 0 || got.Remaining > liveTTL+timeSlack {
		e.t.Fatalf("Lock().Lease.Remaining = %v, want in (0, %v] [L2]", got.Remaining, liveTTL)
	}
}

func testRenewExtends(e *env) {
	topic := e.topic("")
	l := e.acquire(topic, "node-a", liveTTL)
	r, err := e.renew(l, 2*liveTTL)
	e.noErr(err, "Renew")
	if r.Topic != topic || r.Holder != l.Holder || r.Epoch != l.Epoch || !near(r.AcquiredAt, l.AcquiredAt, timeSlack) {
		e.t.Fatalf("renewed lease %+v changed identity or AcquiredAt of %+v [L3]", r, l)
	}
	if r.ExpiresAt.Sub(l.ExpiresAt) < liveTTL-time.Second {
		e.t.Fatalf("Renew to %v: ExpiresAt %v, was %v: not extended by about %v [L3]", 2*liveTTL, r.ExpiresAt, l.ExpiresAt, liveTTL)
	}
	if r.Remaining <= liveTTL || r.Remaining > 2*liveTTL+timeSlack {
		e.t.Fatalf("renewed Remaining = %v, want in (%v, %v]", r.Remaining, liveTTL, 2*liveTTL)
	}
	st := e.lock(topic)
	if !st.Held || !near(st.Lease.ExpiresAt, r.ExpiresAt, timeSlack) {
		e.t.Fatalf("Lock after Renew = %+v, want ExpiresAt %v", st, r.ExpiresAt)
	}
	// Any Lease value naming (topic, holder, epoch) renews: the original too.
	if _, err := e.renew(l, liveTTL); err != nil {
		e.t.Fatalf("Renew with the lease as first acquired: %v [L3]", err)
	}
	if _, err := e.renew(r, liveTTL); err != nil {
		e.t.Fatalf("Renew with the renewed lease: %v", err)
	}
	if recs := e.handovers(topic); len(recs) != 0 {
		e.t.Fatalf("Renew wrote release records: %+v", recs)
	}
}

// testRenewAfterTopicRelease: a released topic lease stays ended when its
// node lease is renewed; the node's other leases go on.
func testRenewAfterTopicRelease(e *env) {
	t1, t2 := e.topic("1"), e.topic("2")
	a1 := e.acquire(t1, "node-a", liveTTL)
	a2 := e.acquire(t2, "node-a", liveTTL)
	e.release(a1, baton.ReasonReleased)
	r, err := e.renew(a2, 2*liveTTL)
	e.noErr(err, "RenewNode after one of its topic leases was released")
	if st := e.lock(t1); st.Held {
		e.t.Fatalf("RenewNode revived a released lease: %+v [L3]", st)
	}
	if st := e.lock(t2); !st.Held || !near(st.Lease.ExpiresAt, r.ExpiresAt, timeSlack) {
		e.t.Fatalf("Lock of the other topic after RenewNode = %+v, want held until %v [L3]", st, r.ExpiresAt)
	}
	e.onlyRecord("after RenewNode", e.handovers(t1), a1.Epoch)
	if recs := e.handovers(t2); len(recs) != 0 {
		e.t.Fatalf("RenewNode wrote records of a live lease: %+v", recs)
	}
}

func testReleaseThenAcquire(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)
	e.release(a, baton.ReasonReleased)

	st := e.lock(topic)
	if st.Held || st.Lease.Holder != e.name("node-a") || st.Lease.Epoch != a.Epoch {
		e.t.Fatalf("Lock after Release = %+v, want not held, latest lease node-a epoch %d [L8]", st, a.Epoch)
	}
	if st.Lease.Remaining > 0 {
		e.t.Fatalf("Lock after Release: Remaining = %v, want <= 0 [L8]", st.Lease.Remaining)
	}
	recs := e.handovers(topic)
	r := e.onlyRecord("after Release", recs, a.Epoch)
	e.checkRecord("after Release", r, a, baton.ReasonReleased, 0, baton.Hash{})
	e.checkNoSuccessor("after Release", r)

	b := e.acquire(topic, "node-b", liveTTL)
	if b.Epoch != a.Epoch+1 {
		e.t.Fatalf("epoch after hand-over = %d, want %d [L1]", b.Epoch, a.Epoch+1)
	}
	if b.AcquiredAt.Before(r.At.Add(-timeSlack)) {
		e.t.Fatalf("successor acquired at %v, before the release at %v", b.AcquiredAt, r.At)
	}
	recs = e.handovers(topic)
	if len(recs) != 1 {
		e.t.Fatalf("Handovers after Release and Acquire: %d records, want 1", len(recs))
	}
	e.checkRecord("after the successor's Acquire", recs[0], a, baton.ReasonReleased, 0, baton.Hash{})
	e.checkSuccessor("after the successor's Acquire", recs[0], b)
}

func testReleaseFailedRecorded(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)
	e.release(a, baton.ReasonFailed)
	if st := e.lock(topic); st.Held {
		e.t.Fatalf("Lock after Release(failed) = %+v, want not held", st)
	}
	r := e.onlyRecord("after Release(failed)", e.handovers(topic), a.Epoch)
	e.checkRecord("after Release(failed)", r, a, baton.ReasonFailed, 0, baton.Hash{})
	b := e.acquire(topic, "node-b", liveTTL)
	if b.Epoch != 2 {
		e.t.Fatalf("epoch after a failed holder = %d, want 2", b.Epoch)
	}
}

func testReleaseInvalidReason(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)
	for _, reason := range []baton.ReleaseReason{baton.ReasonExpired, "", "bogus"} {
		err := e.s.Release(e.ctx, a, reason)
		e.wantErr(err, baton.ErrInvalid, "Release with reason %q [L4]", reason)
		e.wantField(err, "reason", "Release with reason %q [L4]", reason)
	}
	if st := e.lock(topic); !st.Held || st.Lease.Epoch != a.Epoch {
		e.t.Fatalf("refused releases ended the lease: %+v [L4]", st)
	}
	if recs := e.handovers(topic); len(recs) != 0 {
		e.t.Fatalf("refused releases wrote records: %+v [L4]", recs)
	}
	e.release(a, baton.ReasonReleased)
}

func testReleaseNotLive(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)

	wrongHolder := a
	wrongHolder.Holder = "node-x"
	err := e.s.Release(e.ctx, wrongHolder, baton.ReasonReleased)
	e.wantErr(err, baton.ErrLeaseLost, "Release of node-a's lease by node-x")
	if st := e.lock(topic); !st.Held {
		e.t.Fatal("a Release by the wrong holder ended the lease")
	}

	e.release(a, baton.ReasonReleased)
	err = e.s.Release(e.ctx, a, baton.ReasonReleased)
	e.wantErr(err, baton.ErrLeaseLost, "second Release of the same lease")

	b := e.acquire(topic, "node-b", liveTTL)
	err = e.s.Release(e.ctx, a, baton.ReasonFailed)
	e.wantErr(err, baton.ErrLeaseLost, "Release of a stale epoch after a hand-over")
	if st := e.lock(topic); !st.Held || st.Lease.Epoch != b.Epoch {
		e.t.Fatalf("a stale Release ended the new lease: %+v", st)
	}
	recs := e.handovers(topic)
	if len(recs) != 1 {
		e.t.Fatalf("Handovers: %d records, want 1 (one ended epoch): %+v [L4]", len(recs), recs)
	}
	e.checkRecord("after refused releases", recs[0], a, baton.ReasonReleased, 0, baton.Hash{})
}

func testEpochsGrowOverHandovers(e *env) {
	topic := e.topic("")
	const rounds = 12
	holders := []string{"node-a", "node-b", "node-c"}
	var leases []baton.Lease
	for i := range rounds {
		l := e.acquire(topic, holders[i%len(holders)], liveTTL)
		if l.Epoch != uint64(i+1) {
			e.t.Fatalf("round %d: epoch %d, want %d [L1]", i, l.Epoch, i+1)
		}
		reason := baton.ReasonReleased
		if i%2 == 1 {
			reason = baton.ReasonFailed
		}
		e.release(l, reason)
		leases = append(leases, l)
	}
	recs := e.handovers(topic)
	if len(recs) != rounds {
		e.t.Fatalf("Handovers: %d records, want %d", len(recs), rounds)
	}
	for i, r := range recs {
		k := rounds - 1 - i // newest first
		reason := baton.ReasonReleased
		if k%2 == 1 {
			reason = baton.ReasonFailed
		}
		e.checkRecord("Handovers", r, leases[k], reason, 0, baton.Hash{})
		if k+1 < rounds {
			e.checkSuccessor("Handovers", r, leases[k+1])
		} else {
			e.checkNoSuccessor("Handovers", r)
		}
	}
}

func testShortLeaseExpires(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", e.shortTTL)
	if d := a.ExpiresAt.Sub(e.nodeLease("node-a", e.shortTTL).AcquiredAt); !nearDur(d, e.shortTTL, timeSlack) {
		e.t.Fatalf("ExpiresAt-AcquiredAt = %v, want %v", d, e.shortTTL)
	}
	// Poll Acquire by another node until the lease has lapsed: every refusal
	// meanwhile must be ErrLeaseHeld.
	var b baton.Lease
	e.waitFor("node-b to acquire after node-a's lease lapsed", func() bool {
		l, err := e.s.Acquire(e.ctx, topic, e.nodeLease("node-b", liveTTL))
		if err == nil {
			b = l
			return true
		}
		e.wantErr(err, baton.ErrLeaseHeld, "Acquire by node-b while node-a's short lease may be live")
		return false
	})
	if b.Epoch != a.Epoch+1 {
		e.t.Fatalf("epoch after expiry = %d, want %d [L1]", b.Epoch, a.Epoch+1)
	}
	if b.AcquiredAt.Before(a.ExpiresAt.Add(-timeSlack)) {
		e.t.Fatalf("node-b acquired at %v, before node-a's lease expired at %v [L2]", b.AcquiredAt, a.ExpiresAt)
	}
	st := e.lock(topic)
	if !st.Held || st.Lease.Holder != e.name("node-b") {
		e.t.Fatalf("Lock = %+v, want held by node-b", st)
	}
}

func testRenewAfterExpiry(e *env) {
	topic := e.topic("")
	a := e.lapse(e.acquire(topic, "node-a", liveTTL))
	st := e.lock(topic)
	if st.Held || st.Lease.Holder != e.name("node-a") || st.Lease.Epoch != a.Epoch || st.Lease.Remaining > 0 {
		e.t.Fatalf("Lock after expiry = %+v, want not held, latest lease node-a epoch %d, Remaining <= 0 [L8]", st, a.Epoch)
	}
	_, err := e.renew(a, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "Renew after expiry")
	if st := e.lock(topic); st.Held {
		e.t.Fatalf("Renew after expiry revived the lease: %+v", st)
	}
	// Renew found the lapsed lease: it wrote the record [L6].
	r := e.onlyRecord("after Renew-after-expiry", e.handovers(topic), a.Epoch)
	e.checkRecord("after Renew-after-expiry", r, a, baton.ReasonExpired, 0, baton.Hash{})
	e.checkNoSuccessor("after Renew-after-expiry", r)
	_, err = e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Expire after Renew wrote the record [L6]")
}

func testReleaseAfterExpiry(e *env) {
	topic := e.topic("")
	a := e.lapse(e.acquire(topic, "node-a", liveTTL))
	err := e.s.Release(e.ctx, a, baton.ReasonReleased)
	e.wantErr(err, baton.ErrLeaseLost, "Release after expiry")
	rec, err := e.s.Expire(e.ctx, topic)
	switch {
	case err == nil:
		e.checkRecord("Expire after Release-after-expiry", rec, a, baton.ReasonExpired, 0, baton.Hash{})
	case isErr(err, baton.ErrNotFound): // Release wrote the expired record [L6]
	default:
		e.t.Fatalf("Expire after Release-after-expiry: %v, want a record or ErrNotFound", err)
	}
	r := e.onlyRecord("after Release-after-expiry", e.handovers(topic), a.Epoch)
	e.checkRecord("after Release-after-expiry", r, a, baton.ReasonExpired, 0, baton.Hash{})
}

func testExpireLiveLease(e *env) {
	topic := e.topic("")
	a := e.acquire(topic, "node-a", liveTTL)
	_, err := e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrLeaseHeld, "Expire on a live lease")
	if st := e.lock(topic); !st.Held || st.Lease.Epoch != a.Epoch {
		e.t.Fatalf("Expire on a live lease ended it: %+v", st)
	}
	if recs := e.handovers(topic); len(recs) != 0 {
		e.t.Fatalf("Expire on a live lease wrote records: %+v", recs)
	}
}

func testExpireAfterExpiry(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 3)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its[:2])
	a := e.lapse(l)

	rec, err := e.s.Expire(e.ctx, topic)
	e.noErr(err, "Expire after expiry")
	e.checkRecord("Expire", rec, a, baton.ReasonExpired, 2, its[1].Hash)
	e.checkNoSuccessor("Expire", rec)

	_, err = e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "second Expire [L7]")

	recs := e.handovers(topic)
	if len(recs) != 1 {
		e.t.Fatalf("Handovers after Expire: %d records, want 1", len(recs))
	}
	e.checkRecord("Handovers after Expire", recs[0], a, baton.ReasonExpired, 2, its[1].Hash)
	if !recs[0].At.Equal(rec.At) && !near(recs[0].At, rec.At, timeSlack) {
		e.t.Fatalf("stored record At %v, Expire returned %v", recs[0].At, rec.At)
	}
}

func testExpireNothingToRecord(e *env) {
	topic := e.topic("")
	_, err := e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Expire on a topic never locked [L7]")

	a := e.acquire(topic, "node-a", liveTTL)
	e.release(a, baton.ReasonReleased)
	_, err = e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Expire after Release [L7]")
	recs := e.handovers(topic)
	if len(recs) != 1 || recs[0].Reason != baton.ReasonReleased {
		e.t.Fatalf("Handovers = %+v, want the one released record", recs)
	}

	queued := e.topic("queued")
	e.appendN(queued, 1)
	_, err = e.s.Expire(e.ctx, queued)
	e.wantErr(err, baton.ErrNotFound, "Expire on a topic with a queue but never locked [L7]")
}

func testAcquireOverExpired(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 2)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its[:1])
	a := e.lapse(l)

	b := e.acquire(topic, "node-b", liveTTL)
	if b.Epoch != a.Epoch+1 {
		e.t.Fatalf("epoch over an expired lease = %d, want %d", b.Epoch, a.Epoch+1)
	}
	r := e.onlyRecord("after Acquire over an expired lease", e.handovers(topic), a.Epoch)
	e.checkRecord("after Acquire over an expired lease", r, a, baton.ReasonExpired, 1, its[0].Hash)
	e.checkSuccessor("after Acquire over an expired lease", r, b)
	if r.Handover() < 0 || r.Handover() > waitTimeout {
		e.t.Fatalf("Handover() = %v, want between 0 and %v", r.Handover(), waitTimeout)
	}
	_, err := e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrLeaseHeld, "Expire while the successor holds the lock")
}

// testOneRecordPerEpoch ends epochs by every path and checks that each has
// exactly one record with the right reason and successor.
func testOneRecordPerEpoch(e *env) {
	topic := e.topic("")
	want := map[uint64]baton.ReleaseReason{}
	var leases []baton.Lease // leases[i] has epoch i+1, as it ended

	// 1: released.
	l := e.acquire(topic, "node-a", liveTTL)
	e.release(l, baton.ReasonReleased)
	leases, want[1] = append(leases, l), baton.ReasonReleased

	// 2: lapsed, recorded by Expire.
	l = e.lapse(e.acquire(topic, "node-b", liveTTL))
	_, err := e.s.Expire(e.ctx, topic)
	e.noErr(err, "Expire of epoch 2")
	leases, want[2] = append(leases, l), baton.ReasonExpired

	// 3: lapsed, recorded by the next Acquire (4).
	l = e.lapse(e.acquire(topic, "node-c", liveTTL))
	leases, want[3] = append(leases, l), baton.ReasonExpired

	// 4: lapsed, recorded by Renew.
	l = e.lapse(e.acquire(topic, "node-a", liveTTL))
	_, err = e.renew(l, liveTTL)
	e.wantErr(err, baton.ErrLeaseLost, "Renew of lapsed epoch 4")
	leases, want[4] = append(leases, l), baton.ReasonExpired

	// 5: failed.
	l = e.acquire(topic, "node-b", liveTTL)
	e.release(l, baton.ReasonFailed)
	leases, want[5] = append(leases, l), baton.ReasonFailed

	// 6: lapsed, then a late Release, then Expire and Acquire.
	l = e.lapse(e.acquire(topic, "node-c", liveTTL))
	err = e.s.Release(e.ctx, l, baton.ReasonReleased)
	e.wantErr(err, baton.ErrLeaseLost, "Release of lapsed epoch 6")
	if _, err := e.s.Expire(e.ctx, topic); err != nil && !isErr(err, baton.ErrNotFound) {
		e.t.Fatalf("Expire of epoch 6: %v", err)
	}
	leases, want[6] = append(leases, l), baton.ReasonExpired

	// 7: live.
	last := e.acquire(topic, "node-a", liveTTL)
	leases = append(leases, last)
	if last.Epoch != 7 {
		e.t.Fatalf("epoch after six hand-overs = %d, want 7", last.Epoch)
	}
	_, err = e.s.Expire(e.ctx, topic)
	e.wantErr(err, baton.ErrLeaseHeld, "Expire while epoch 7 is live")

	recs := e.handovers(topic)
	if len(recs) != len(want) {
		e.t.Fatalf("Handovers: %d records, want %d (one per ended epoch): %+v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		epoch := uint64(len(want) - i)
		if r.Epoch != epoch {
			e.t.Fatalf("Handovers[%d] has epoch %d, want %d (newest first) [L10]", i, r.Epoch, epoch)
		}
		e.checkRecord("Handovers", r, leases[epoch-1], want[epoch], 0, baton.Hash{})
		e.checkSuccessor("Handovers", r, leases[epoch])
	}
}

func testRecordHoldsCursor(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 5)
	a := e.acquire(topic, "node-a", liveTTL)
	e.commit(a, 0, its[:3])
	e.release(a, baton.ReasonReleased)
	r := e.onlyRecord("after Release", e.handovers(topic), a.Epoch)
	e.checkRecord("after Release", r, a, baton.ReasonReleased, 3, its[2].Hash)

	b := e.acquire(topic, "node-b", liveTTL)
	e.commit(b, 3, its[3:])
	e.release(b, baton.ReasonFailed)
	r = e.onlyRecord("after Release(failed)", e.handovers(topic), b.Epoch)
	e.checkRecord("after Release(failed)", r, b, baton.ReasonFailed, 5, its[4].Hash)

	c := e.acquire(topic, "node-c", liveTTL)
	c = e.lapse(c)
	_, err := e.s.Expire(e.ctx, topic)
	e.noErr(err, "Expire")
	r = e.onlyRecord("after Expire", e.handovers(topic), c.Epoch)
	e.checkRecord("after Expire", r, c, baton.ReasonExpired, 5, its[4].Hash)
}

// testAcquireReportsCursor: a lease's Cursor, where the engine sets it, is
// the cursor as the acquire found it: what Cursor reads, before anything
// was published, and after publications of earlier epochs. Every engine
// here sets it (a holder then resumes without reading the cursor again).
func testAcquireReportsCursor(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 5)
	check := func(what string, l baton.Lease) {
		e.t.Helper()
		want := e.cursor(topic)
		want.Topic = topic
		switch {
		case l.Cursor == nil:
			e.t.Fatalf("%s: Acquire set no Cursor", what)
		case l.Cursor.Topic != topic || l.Cursor.Seq != want.Seq || l.Cursor.Hash != want.Hash || l.Cursor.Epoch != want.Epoch ||
			!near(l.Cursor.UpdatedAt, want.UpdatedAt, time.Millisecond):
			e.t.Fatalf("%s: Acquire's Cursor = %+v, Cursor reads %+v", what, *l.Cursor, want)
		}
	}
	a := e.acquire(topic, "node-a", liveTTL)
	check("a fresh topic", a)
	e.checkResume("a fresh topic", a)
	e.commit(a, 0, its[:3])
	e.release(a, baton.ReasonReleased)
	b := e.acquire(topic, "node-b", liveTTL)
	check("after epoch 1 published 3", b)
	if b.Cursor.Seq != 3 || b.Cursor.Hash != its[2].Hash || b.Cursor.Epoch != a.Epoch {
		e.t.Fatalf("Acquire's Cursor after epoch %d published 3 = %+v", a.Epoch, *b.Cursor)
	}
	e.checkResume("after epoch 1 published 3", b)
}

// checkResume holds what an engine read for a new lease (Lease.Resume, if
// any) to what the reads it stands for return: Items after the cursor,
// and the cursor's hash in the index.
func (e *env) checkResume(what string, l baton.Lease) {
	e.t.Helper()
	r := l.Resume
	if r == nil {
		return
	}
	if l.Cursor == nil {
		e.t.Fatalf("%s: Acquire set a Resume without a Cursor", what)
	}
	if r.Checked && l.Cursor.Seq > 0 {
		if seq, err := e.s.SeqOfHash(e.ctx, l.Topic, l.Cursor.Hash); err != nil || seq != l.Cursor.Seq {
			e.t.Fatalf("%s: Resume says the cursor was checked, but SeqOfHash = %d, %v; want %d", what, seq, err, l.Cursor.Seq)
		}
	}
	if r.Asked == 0 {
		if len(r.Items) > 0 {
			e.t.Fatalf("%s: Resume has %d items and asked for none", what, len(r.Items))
		}
		return
	}
	want, err := e.s.Items(e.ctx, l.Topic, l.Cursor.Seq, r.Asked)
	e.noErr(err, "%s: Items after the acquired cursor", what)
	if len(want) != len(r.Items) {
		e.t.Fatalf("%s: Resume has %d items, Items(%d, %d) reads %d", what, len(r.Items), l.Cursor.Seq, r.Asked, len(want))
	}
	for i := range want {
		if want[i].Seq != r.Items[i].Seq || want[i].Hash != r.Items[i].Hash || want[i].MsgID != r.Items[i].MsgID ||
			string(want[i].Value) != string(r.Items[i].Value) {
			e.t.Fatalf("%s: Resume's item %d = %+v, Items reads %+v", what, i, r.Items[i], want[i])
		}
	}
}

func testHandoversNewestFirstWithLimit(e *env) {
	topic := e.topic("")
	for range 5 {
		e.release(e.acquire(topic, "node-a", liveTTL), baton.ReasonReleased)
	}
	for _, tc := range []struct {
		limit int
		want  []uint64
	}{
		{1, []uint64{5}},
		{2, []uint64{5, 4}},
		{5, []uint64{5, 4, 3, 2, 1}},
		{100, []uint64{5, 4, 3, 2, 1}},
	} {
		recs, err := e.s.Handovers(e.ctx, topic, tc.limit)
		e.noErr(err, "Handovers(limit %d)", tc.limit)
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Epoch)
		}
		if len(got) != len(tc.want) {
			e.t.Fatalf("Handovers(limit %d) epochs %v, want %v [L10]", tc.limit, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				e.t.Fatalf("Handovers(limit %d) epochs %v, want %v [L10]", tc.limit, got, tc.want)
			}
		}
	}
	_, err := e.s.Handovers(e.ctx, topic, 0)
	e.wantErr(err, baton.ErrInvalid, "Handovers with limit 0 [Q7]")
	recs, err := e.s.Handovers(e.ctx, e.topic("unknown"), 10)
	e.noErr(err, "Handovers of an unknown topic [L10]")
	if len(recs) != 0 {
		e.t.Fatalf("Handovers of an unknown topic: %+v, want none", recs)
	}
}

func testLockInvalidInput(e *env) {
	topic := e.topic("")
	nl := e.nodeLease("node-a", liveTTL)
	for _, tc := range []struct {
		name  string
		topic string
		nl    baton.NodeLease
		field string
	}{
		{"empty topic", "", nl, "topic"},
		{"bad topic", "no spaces", nl, "topic"},
		{"topic starting with a dot", ".hidden", nl, "topic"},
		{"empty holder", topic, baton.NodeLease{Epoch: nl.Epoch}, "holder"},
		{"zero node epoch", topic, baton.NodeLease{Node: nl.Node}, "epoch"},
	} {
		_, err := e.s.Acquire(e.ctx, tc.topic, tc.nl)
		e.wantErr(err, baton.ErrInvalid, "Acquire with %s", tc.name)
		e.wantField(err, tc.field, "Acquire with %s [L11]", tc.name)
	}
	if st := e.lock(topic); st.Held || st.Lease.Epoch != 0 {
		e.t.Fatalf("refused Acquires took the lock: %+v", st)
	}
	l := e.acquire(topic, "node-a", liveTTL)
	for _, ttl := range []time.Duration{0, -time.Second} {
		_, err := e.renew(l, ttl)
		e.wantErr(err, baton.ErrInvalid, "RenewNode with ttl %v", ttl)
		e.wantField(err, "ttl", "RenewNode with ttl %v [L11]", ttl)
		_, err = e.s.AcquireNode(e.ctx, e.name("node-z"), ttl)
		e.wantErr(err, baton.ErrInvalid, "AcquireNode with ttl %v", ttl)
		e.wantField(err, "ttl", "AcquireNode with ttl %v [L11]", ttl)
	}
	_, err := e.s.AcquireNode(e.ctx, "", liveTTL)
	e.wantErr(err, baton.ErrInvalid, "AcquireNode without a node")
	e.wantField(err, "node", "AcquireNode without a node [L11]")
	_, err = e.s.ExpireNode(e.ctx, "")
	e.wantErr(err, baton.ErrInvalid, "ExpireNode without a node")
	_, err = e.s.ReleaseNode(e.ctx, nodeOf(l), baton.ReasonExpired)
	e.wantErr(err, baton.ErrInvalid, "ReleaseNode with reason expired")
	e.wantField(err, "reason", "ReleaseNode with reason expired [L11]")
	_, err = e.s.ReleaseNode(e.ctx, baton.NodeLease{Node: l.Holder}, baton.ReasonReleased)
	e.wantErr(err, baton.ErrInvalid, "ReleaseNode without an epoch")
	e.wantField(err, "epoch", "ReleaseNode without an epoch [L11]")
	if st := e.lock(topic); !st.Held || !near(st.Lease.ExpiresAt, l.ExpiresAt, timeSlack) {
		e.t.Fatalf("refused calls changed the lease: %+v", st)
	}

	bad := "bad topic"
	_, err = e.s.Lock(e.ctx, bad)
	e.wantErr(err, baton.ErrInvalid, "Lock of an invalid topic [Q8]")
	_, err = e.s.Expire(e.ctx, bad)
	e.wantErr(err, baton.ErrInvalid, "Expire of an invalid topic [Q8]")
	_, err = e.s.Handovers(e.ctx, bad, 10)
	e.wantErr(err, baton.ErrInvalid, "Handovers of an invalid topic [Q8]")
}
