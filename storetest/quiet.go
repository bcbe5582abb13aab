package storetest

import (
	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/pubrecord"
)

// busyProposer is a registered publisher that is not resting: appends go
// the usual way (no commit proposed), and it names its lease.
type busyProposer struct{ pubrecord.Proposer }

func (p *busyProposer) Resting() (uint64, bool)                   { return 0, false }
func (p *busyProposer) Propose([]baton.Item) (baton.Commit, bool) { return baton.Commit{}, false }

// testSharedAppendQuiet: on an engine that publishes on append, an append
// through the handle where the topic's publisher is registered, under the
// lease the lock still is, is not told to the other handles (Redis: no
// "append" message; SQLite: no change row, no bell), while that handle's
// publisher is woken all the same; the one publisher an append could wake
// is that one (baton.RestingProposer, HeldLease). Once the lock moves on,
// the next append through it is told again: the new holder's publisher
// hears it. Another handle's append is told as ever.
func testSharedAppendQuiet(p *pair) {
	a, b := p.a, p.b
	ap, ok := a.s.(baton.AppendPublisher)
	if !ok {
		a.t.Skip("the engine does not publish on append: every append is told to every handle")
	}
	topic, markerTopic := a.topic("quiet"), a.topic("marker")
	l := a.acquire(topic, "node-a", liveTTL)
	stop := ap.PublishOnAppend(topic, &busyProposer{pubrecord.Proposer{Lease: l}})
	defer stop()
	local := a.subscribe(topic, baton.SignalAppend)
	remote := b.subscribe(topic, baton.SignalAppend)
	// marker: b has heard every change told before a's append to it (one
	// pub/sub connection keeps Redis's order; a watcher reads SQLite's log
	// in order).
	marker := b.subscribe(markerTopic, baton.SignalAppend)
	for i := range 3 {
		a.appendN(topic, 1)
		a.wake(local, "the append, in the handle of the topic's publisher")
		a.appendN(markerTopic, 1)
		b.wake(marker, "the append to the marker topic")
		if poll.Pending(remote) {
			b.t.Fatalf("append %d was told to another handle while the lock is the lease of the publisher registered where it was made", i)
		}
	}
	b.appendN(topic, 1)
	a.wake(local, "another handle's append")

	// The lock moves on: a's registration is stale, and its appends are
	// told again.
	a.noErr(a.s.Release(a.ctx, l, baton.ReasonReleased), "Release")
	if l2 := b.acquire(topic, "node-b", liveTTL); l2.Epoch <= l.Epoch {
		b.t.Fatalf("new lease epoch %d after %d", l2.Epoch, l.Epoch)
	}
	for poll.Pending(remote) {
	}
	a.appendN(topic, 1)
	b.wake(remote, "an append through a once the lock is another lease")
}
