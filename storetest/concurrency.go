package storetest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/baton-pub/baton"
)

func concurrencyTests() []test {
	return []test{
		{"RaceAcquireFree", func(e *env) { raceAcquire(e, []*env{e}, false) }},
		{"RaceAcquireOverExpired", func(e *env) { raceAcquire(e, []*env{e}, true) }},
		{"RaceExpire", testRaceExpire},
		{"RaceAppend", func(e *env) { raceAppend(e, []*env{e}) }},
		{"RaceAppendSameMsgID", func(e *env) { raceAppendSameMsgID(e, []*env{e}) }},
		{"RaceCommit", testRaceCommit},
	}
}

const racers = 16

// race runs fn(i) on racers goroutines released together and returns their
// errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// raceAcquire: racers on the given handles race for a free lock (never taken,
// or lapsed): exactly one wins, every other gets ErrLeaseHeld.
func raceAcquire(e *env, handles []*env, overExpired bool) {
	topic := e.topic("")
	var prev baton.Lease
	if overExpired {
		prev = e.lapse(e.acquire(topic, "node-old", liveTTL))
	}
	leases := make([]baton.Lease, racers)
	nls := make([]baton.NodeLease, racers)
	for i := range nls {
		nls[i] = handles[i%len(handles)].nodeLease(fmt.Sprintf("node-%d", i), liveTTL)
	}
	errs := race(racers, func(i int) error {
		h := handles[i%len(handles)]
		l, err := h.s.Acquire(h.ctx, topic, nls[i])
		leases[i] = l
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				e.t.Fatalf("two racers acquired the lock: node-%d (epoch %d) and node-%d (epoch %d)",
					winner, leases[winner].Epoch, i, leases[i].Epoch)
			}
			winner = i
		case errors.Is(err, baton.ErrLeaseHeld):
		default:
			e.t.Fatalf("racer node-%d: %v, want success or ErrLeaseHeld", i, err)
		}
	}
	if winner < 0 {
		e.t.Fatalf("no racer of %d acquired a free lock", racers)
	}
	w := leases[winner]
	if w.Epoch != prev.Epoch+1 {
		e.t.Fatalf("winner's epoch %d, want %d [L1]", w.Epoch, prev.Epoch+1)
	}
	st := e.lock(topic)
	if !st.Held || st.Lease.Holder != w.Holder || st.Lease.Epoch != w.Epoch {
		e.t.Fatalf("Lock after the race = %+v, want held by the winner %s epoch %d", st, w.Holder, w.Epoch)
	}
	if overExpired {
		r := e.onlyRecord("after racing over an expired lease", e.handovers(topic), prev.Epoch)
		e.checkRecord("after racing over an expired lease", r, prev, baton.ReasonExpired, 0, baton.Hash{})
		e.checkSuccessor("after racing over an expired lease", r, w)
	}
	if recs := e.handovers(topic); len(recs) != int(prev.Epoch) {
		e.t.Fatalf("Handovers after the race: %d records, want %d", len(recs), prev.Epoch)
	}
}

// testRaceExpire: many standbys turn the same lapsed lease into a record at
// once: exactly one gets it [L6].
func testRaceExpire(e *env) {
	topic := e.topic("")
	a := e.lapse(e.acquire(topic, "node-a", liveTTL))
	recs := make([]baton.ReleaseRecord, racers)
	errs := race(racers, func(i int) error {
		r, err := e.s.Expire(e.ctx, topic)
		recs[i] = r
		return err
	})
	got := 0
	for i, err := range errs {
		switch {
		case err == nil:
			got++
			e.checkRecord(fmt.Sprintf("racer %d's record", i), recs[i], a, baton.ReasonExpired, 0, baton.Hash{})
		case errors.Is(err, baton.ErrNotFound):
		default:
			e.t.Fatalf("racer %d: Expire: %v, want a record or ErrNotFound", i, err)
		}
	}
	if got != 1 {
		e.t.Fatalf("%d racers got the expired record, want exactly 1 [L6]", got)
	}
	e.onlyRecord("after racing Expire", e.handovers(topic), a.Epoch)
}

// raceAppend: goroutines on the given handles append batches of one to
// three updates at once; every update gets a unique seq, the seqs are
// 1..total with no gap, each batch's seqs are contiguous, and every item
// reads back with its receipt's hash [Q5].
func raceAppend(e *env, handles []*env) {
	topic := e.topic("")
	const writers, batches = 8, 8
	type batch struct {
		ups []baton.Update
		rs  []baton.Receipt
	}
	work := make([][]batch, writers)
	total := 0
	for w := range work {
		for b := range batches {
			n := 1 + (w+b)%3
			work[w] = append(work[w], batch{ups: newUpdates(e.t, n)})
			total += n
		}
	}
	errs := race(writers, func(w int) error {
		h := handles[w%len(handles)]
		for b := range work[w] {
			rs, err := h.s.Append(h.ctx, topic, work[w][b].ups)
			if err != nil {
				return err
			}
			work[w][b].rs = rs
		}
		return nil
	})
	for w, err := range errs {
		e.noErr(err, "writer %d: Append", w)
	}
	bySeq := map[uint64]baton.Receipt{}
	for w := range work {
		for b, bt := range work[w] {
			if len(bt.rs) != len(bt.ups) {
				e.t.Fatalf("writer %d batch %d: %d receipts for %d updates", w, b, len(bt.rs), len(bt.ups))
			}
			for i, r := range bt.rs {
				if r.Duplicate || r.MsgID != bt.ups[i].MsgID {
					e.t.Fatalf("writer %d batch %d receipt %d = %+v, want a new item for %s", w, b, i, r, bt.ups[i].MsgID)
				}
				if i > 0 && r.Seq != bt.rs[i-1].Seq+1 {
					e.t.Fatalf("writer %d batch %d: seqs %d then %d: a batch's seqs must be contiguous", w, b, bt.rs[i-1].Seq, r.Seq)
				}
				if old, dup := bySeq[r.Seq]; dup {
					e.t.Fatalf("seq %d given to both %s and %s [Q5]", r.Seq, old.MsgID, r.MsgID)
				}
				bySeq[r.Seq] = r
			}
		}
	}
	for seq := uint64(1); seq <= uint64(total); seq++ {
		if _, ok := bySeq[seq]; !ok {
			e.t.Fatalf("seq %d missing among %d concurrent appends [Q5]", seq, total)
		}
	}
	its := e.items(topic, 0, pageAll)
	if len(its) != total {
		e.t.Fatalf("Items: %d, want %d", len(its), total)
	}
	for i, it := range its {
		r := bySeq[uint64(i+1)]
		if it.Seq != uint64(i+1) || it.Hash != r.Hash || it.MsgID != r.MsgID {
			e.t.Fatalf("item %d = {seq %d %s %s}, receipt {%d %s %s}", i, it.Seq, it.MsgID, it.Hash, r.Seq, r.MsgID, r.Hash)
		}
	}
	if ti := e.topicInfo(topic); ti.LastSeq != uint64(total) {
		e.t.Fatalf("LastSeq %d, want %d", ti.LastSeq, total)
	}
}

// raceAppendSameMsgID: racers retry the same update at once: exactly one
// adds it, every other gets a duplicate receipt of it [Q4].
func raceAppendSameMsgID(e *env, handles []*env) {
	topic := e.topic("")
	ups := newUpdates(e.t, 1)
	rs := make([]baton.Receipt, racers)
	errs := race(racers, func(i int) error {
		h := handles[i%len(handles)]
		got, err := h.s.Append(h.ctx, topic, ups)
		if err == nil && len(got) != 1 {
			return fmt.Errorf("%d receipts for 1 update", len(got))
		}
		if err == nil {
			rs[i] = got[0]
		}
		return err
	})
	fresh := 0
	for i, err := range errs {
		e.noErr(err, "racer %d: Append", i)
		if !rs[i].Duplicate {
			fresh++
		}
		if rs[i].Seq != 1 || rs[i].Hash != baton.HashItem(topic, ups[0]) {
			e.t.Fatalf("racer %d receipt %+v, want seq 1 and the update's hash", i, rs[i])
		}
	}
	if fresh != 1 {
		e.t.Fatalf("%d racers added the same msg id, want exactly 1 [Q4]", fresh)
	}
	if its := e.items(topic, 0, pageAll); len(its) != 1 {
		e.t.Fatalf("Items after racing one msg id: %v, want one item", seqsOf(its))
	}
}

// testRaceCommit: the holder's goroutines commit the same range at once (a
// retry racing the original): exactly one moves the cursor.
func testRaceCommit(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 3)
	l := e.acquire(topic, "node-a", liveTTL)
	errs := race(racers, func(int) error {
		_, err := e.s.Commit(e.ctx, commitOf(l, 0, its))
		return err
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, baton.ErrCursorMoved):
		default:
			e.t.Fatalf("racer %d: Commit: %v, want success or ErrCursorMoved", i, err)
		}
	}
	if ok != 1 {
		e.t.Fatalf("%d racing commits of the same range succeeded, want exactly 1", ok)
	}
	if ls := e.leaves(topic, 0, pageAll); len(ls) != len(its) {
		e.t.Fatalf("Leaves after racing commits: %d, want %d", len(ls), len(its))
	}
	e.checkPublished("Published after racing commits", e.published(topic, 0, pageAll), its, l)
}

func lifecycleTests() []test {
	return []test{
		{"Ping", func(e *env) { e.noErr(e.s.Ping(e.ctx), "Ping") }},
		{"CloseIdempotent", testCloseIdempotent},
	}
}

func testCloseIdempotent(e *env) {
	sub := e.s.Subscribe(e.topic(""), baton.SignalAppend)
	e.noErr(e.s.Close(), "Close")
	e.noErr(e.s.Close(), "second Close [S1]")
	err := e.s.Ping(e.ctx)
	e.wantErr(err, baton.ErrClosed, "Ping after Close [S1]")
	sub.Close() // after the store closed: must not panic [N4]
}
