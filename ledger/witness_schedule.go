package ledger

import (
	"container/heap"
	"context"
	"errors"
	"time"

	"github.com/baton-pub/baton"
)

// The witness's work is driven by the store's signals, not by a clock per
// topic (docs/ledger.md, "Idle topics cost nothing"):
//
//   - each followed topic has a SignalCommit and SignalCheckpoint
//     subscription, which schedules a round of the topic Poll later after
//     a commit, at once after a checkpoint stored on its own (signalled);
//   - a few workers (WitnessConfig.Workers) run rounds (mirror the new
//     leaves, check the new checkpoints, cosign) of ready topics, one
//     round of a topic at a time;
//   - after a commit, the checkpoint that covers it may be stored on its
//     own a little later (the holder signs at most every Interval and
//     stores what no commit took): that store is signalled too, and the
//     topic is also looked at again Poll later, then 2, 4 ... Poll while
//     nothing changes (for the other witnesses' cosignatures, which are
//     not signalled), and left alone once the delay passes settleAfter;
//   - one scheduler goroutine fires those delayed rounds and the sweep:
//     one topic at a time, at most SweepRate topics per second, so that
//     every topic is re-read about once per Sweep (a notification lost,
//     say, in a Redis reconnect is caught up then). Its cost is per node,
//     not per topic.
//
// An idle topic that is settled (its copy covered by the last accepted
// checkpoint, cosigned, its state saved) is read by nothing but the sweep.
//
// The fields queued, running, again, dueAt and heapIdx of every
// topicWitness are guarded by Witness.smu.

// settleAfter: a topic is followed up after a change until the next delay
// would exceed settleAfter times Poll (rounds 1, 2, 4 and 8 s after it at
// the default: a checkpoint the holder stores on its own comes within
// Interval + 100 ms, the other witnesses' cosignatures within CosignEvery).
// Each follow-up costs two reads per topic, so a burst of new topics keeps
// the witnesses busy for this long.
const settleAfter = 8

// Default scheduling of the witness.
const (
	DefaultWitnessWorkers = 16
	DefaultSweep          = time.Minute
	DefaultSweepRate      = 5.0
)

// signalled is a SignalCommit or SignalCheckpoint of tw's topic.
func (w *Witness) signalled(tw *topicWitness, sig baton.Signal) {
	tw.signalled.Store(true)
	now := w.clock.Now()
	w.smu.Lock()
	defer w.smu.Unlock()
	if sig&baton.SignalCheckpoint != 0 {
		// A checkpoint stored on its own covers leaves committed before
		// it: one round now mirrors them, checks it and cosigns. Were it
		// left to the follow-ups after the commit, a holder slower than
		// their last one (a loaded machine, a long Interval) would leave it
		// to the sweep, a minute later.
		w.readyLocked(tw)
		return
	}
	// The round comes about Poll after the first commit of a burst, not at
	// once: the holder stores the checkpoint that covers a commit within
	// its Interval (a second by default), so one round then mirrors the
	// leaves and checks the checkpoint, where a round at once would read
	// the leaves and find no checkpoint yet, and need a second (each round
	// reads the leaves and the checkpoints: at a hand-over of thousands of
	// topics, every witness does it for every one). Later commits within
	// Poll are taken by the same round. (This node's own commits are in
	// the copy already: its checkpointer appends them.) A quarter of Poll
	// more leaves the holder the time to store it: it signs Interval
	// after the commit, and both are a second by default.
	w.atLocked(tw, now.Add(w.cfg.Poll+w.cfg.Poll/4))
}

// Backlog is the witness's work in hand: now, the rounds ready or running
// (owed at once: a commit's or a checkpoint's, or the sweep's one topic);
// later, the topics with a round scheduled (the follow-ups after a change,
// a cosignature or a state save waiting for CosignEvery). Both fall to
// about 0 once every topic has settled; after a burst of new topics they
// say how long the witness takes to catch up (baton_witness_rounds_*).
func (w *Witness) Backlog() (now, later int) {
	w.smu.Lock()
	defer w.smu.Unlock()
	return len(w.ready) + w.busy, len(w.due)
}

// Rounds is how many rounds the witness has run: with the topics it
// follows, it says how many times a change costs each topic (a settled
// topic is read again only by the sweep).
func (w *Witness) Rounds() uint64 { return w.rounds.Load() }

// readyLocked queues a round of tw (again after the current one, if one
// runs).
func (w *Witness) readyLocked(tw *topicWitness) {
	if tw.heapIdx >= 0 {
		heap.Remove(&w.due, tw.heapIdx)
	}
	switch {
	case tw.running:
		tw.again = true
	case !tw.queued:
		tw.queued = true
		w.ready = append(w.ready, tw)
		w.cond.Signal()
	}
}

// atLocked schedules a round of tw at t, unless one comes sooner.
func (w *Witness) atLocked(tw *topicWitness, t time.Time) {
	switch {
	case tw.queued || tw.again:
		return
	case tw.heapIdx >= 0:
		if !t.Before(tw.dueAt) {
			return
		}
		tw.dueAt = t
		heap.Fix(&w.due, tw.heapIdx)
	default:
		tw.dueAt = t
		heap.Push(&w.due, tw)
	}
	if tw.heapIdx == 0 {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// work runs rounds of ready topics until ctx ends.
func (w *Witness) work(ctx context.Context) {
	for {
		w.smu.Lock()
		for len(w.ready) == 0 && ctx.Err() == nil {
			w.cond.Wait()
		}
		if ctx.Err() != nil {
			w.smu.Unlock()
			return
		}
		if hold := w.hold.Load(); hold != nil && len(w.ready) > 0 {
			// Held outside smu, with the topic still queued: a signal
			// meanwhile finds it queued and adds nothing.
			w.smu.Unlock()
			(*hold)(ctx)
			w.smu.Lock()
			if len(w.ready) == 0 || ctx.Err() != nil {
				w.smu.Unlock()
				continue
			}
		}
		tw := w.ready[0]
		w.ready[0] = nil
		w.ready = w.ready[1:]
		tw.queued, tw.running = false, true
		w.busy++
		w.smu.Unlock()

		next := tw.round(ctx)
		w.rounds.Add(1)

		w.smu.Lock()
		tw.running = false
		w.busy--
		if tw.again {
			tw.again = false
			w.readyLocked(tw)
		} else if !next.IsZero() {
			w.atLocked(tw, next)
		}
		w.smu.Unlock()
	}
}

// schedule fires the delayed rounds and the sweep until ctx ends.
func (w *Witness) schedule(ctx context.Context) {
	t := w.clock.NewTimer(time.Hour)
	defer t.Stop()
	nextSweep := w.clock.Now().Add(w.sweepGap())
	for {
		now := w.clock.Now()
		w.smu.Lock()
		for len(w.due) > 0 && !w.due[0].dueAt.After(now) {
			w.readyLocked(w.due[0]) // removes it from due
		}
		wait := time.Duration(1 << 62)
		if len(w.due) > 0 {
			wait = w.due[0].dueAt.Sub(now)
		}
		if w.cfg.Sweep > 0 {
			if !now.Before(nextSweep) {
				w.sweepLocked()
				nextSweep = now.Add(w.sweepGapLocked())
			}
			wait = min(wait, nextSweep.Sub(now))
		}
		w.smu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-w.kick: // the next Reset moves the timer
		}
	}
}

// sweepLocked queues a round of the next topic in the sweep's order, if
// none is queued or running.
func (w *Witness) sweepLocked() {
	if len(w.order) == 0 {
		return
	}
	w.sweepAt %= len(w.order)
	tw := w.order[w.sweepAt]
	w.sweepAt++
	if !tw.queued && !tw.running {
		w.readyLocked(tw)
	}
}

func (w *Witness) sweepGap() time.Duration {
	w.smu.Lock()
	defer w.smu.Unlock()
	return w.sweepGapLocked()
}

// sweepGapLocked is the time between two topics of the sweep: a whole
// sweep takes Sweep, or longer at more than Sweep x SweepRate topics.
func (w *Witness) sweepGapLocked() time.Duration {
	gap := time.Duration(float64(time.Second) / w.cfg.SweepRate)
	if n := len(w.order); n > 0 {
		gap = max(gap, w.cfg.Sweep/time.Duration(n))
	}
	return max(gap, time.Millisecond)
}

// round mirrors the topic's new leaves and checks its new checkpoints,
// and returns when to look again (zero: not before a signal or the
// sweep). Only one round of a topic runs at a time.
func (tw *topicWitness) round(ctx context.Context) time.Time {
	kicked := tw.signalled.Swap(false)
	before := tw.progress()
	var failed bool
	if err := tw.restarted(); err != nil {
		failed = true
		tw.log.Warn("ledger copy: restart", "err", err)
	}
	// A halted topic is not mirrored nor checked until a re-anchor lifts
	// the halt (witness_halt.go); the re-anchor's write wakes the round.
	warn := func(what string, err error) {
		if err != nil && !errors.Is(err, errHalted) && ctx.Err() == nil {
			failed = true
			tw.log.Warn("ledger copy: "+what, "err", err)
		}
	}
	if err := tw.reanchored(ctx); err != nil {
		warn("re-anchor", err)
	} else {
		warn("mirror", tw.mirror(ctx))
		if tw.halted() == nil {
			warn("check checkpoints", tw.check(ctx))
		}
	}
	poll := tw.w.cfg.Poll
	after := tw.progress()
	switch {
	case !failed && after.size > 0 && after.accepted == after.size && !tw.dirty && tw.cosignAt.IsZero():
		// Settled: every leaf of the copy is under a checkpoint this
		// witness accepted (and cosigned, unless it signed it), and nothing
		// is left to save or cosign: until the next commit, which signals,
		// there is nothing to look at. (Proofs and checkpoints served from
		// the copy read the other witnesses' cosignatures when asked:
		// topicWitness.refreshed.)
		tw.backoff = 0
	case kicked || after != before:
		tw.backoff = poll
	case tw.backoff > 0:
		tw.backoff *= 2
		if tw.backoff > settleAfter*poll {
			tw.backoff = 0
			if failed {
				// Not settled: the store could not be read. Keep trying,
				// at the longest follow-up's pace.
				tw.backoff = settleAfter * poll
			}
		}
	case failed:
		tw.backoff = poll // a sweep's round failed: try again soon
	}
	now := tw.w.clock.Now()
	var next time.Time
	if tw.backoff > 0 {
		next = now.Add(tw.backoff)
	}
	if !tw.cosignAt.IsZero() {
		next = earliest(next, tw.cosignAt)
	}
	if tw.dirty {
		next = earliest(next, tw.lastSave.Add(tw.w.cfg.CosignEvery))
	}
	return next
}

// progress is what a round can change that calls for another look soon.
type progress struct {
	size, accepted, cosigned uint64
	cosignatures             int
}

func (tw *topicWitness) progress() progress {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return progress{size: tw.tree.Size(), accepted: tw.state.Size, cosigned: tw.cosigned.Load(), cosignatures: len(tw.latest.Cosignatures)}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// dueHeap orders the topics with a delayed round by time.
type dueHeap []*topicWitness

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].dueAt.Before(h[j].dueAt) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *dueHeap) Push(x any) {
	tw := x.(*topicWitness)
	tw.heapIdx = len(*h)
	*h = append(*h, tw)
}
func (h *dueHeap) Pop() any {
	old := *h
	tw := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	tw.heapIdx = -1
	return tw
}
