package storetest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

func notifierTests() []test {
	return []test{
		{"SignalAppend", testSignalAppend},
		{"SignalCommit", testSignalCommit},
		{"SignalCheckpoint", testSignalCheckpoint},
		{"SignalLockAcquireRelease", testSignalLockAcquireRelease},
		{"SignalLockExpire", testSignalLockExpire},
		{"SignalTopicOnFirstAppend", testSignalTopicOnFirstAppend},
		{"SignalTopicOnFirstAcquire", testSignalTopicOnFirstAcquire},
		{"SignalMask", testSignalMask},
		{"ManySubscribers", testManySubscribers},
		{"SlowSubscriberNeverBlocks", testSlowSubscriberNeverBlocks},
		{"CloseSubscription", testCloseSubscription},
		{"SubscribeFunc", testSubscribeFunc},
	}
}

func testSignalAppend(e *env) {
	topic := e.topic("")
	sub := e.subscribe(topic, baton.SignalAppend)
	e.appendN(topic, 1)
	e.wake(sub, "the first Append")
	e.appendN(topic, 2)
	e.wake(sub, "a second Append")
}

func testSignalCommit(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 3)
	l := e.acquire(topic, "node-a", liveTTL)
	sub := e.subscribe(topic, baton.SignalCommit)
	e.commit(l, 0, its[:2])
	e.wake(sub, "Commit")
	e.commit(l, 2, its[2:])
	e.wake(sub, "a second Commit")
}

// testSignalCheckpoint: a checkpoint stored on its own is signalled (the
// witnesses check it without a timer: ledger/witness_schedule.go).
func testSignalCheckpoint(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 4)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its)
	sub := e.subscribe(topic, baton.SignalCheckpoint)
	e.noErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 2)), "AddCheckpoint size 2")
	e.wake(sub, "AddCheckpoint")
	e.noErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 4)), "AddCheckpoint size 4")
	e.wake(sub, "a second AddCheckpoint")
}

func testSignalLockAcquireRelease(e *env) {
	topic := e.topic("")
	sub := e.subscribe(topic, baton.SignalLock)
	l := e.acquire(topic, "node-a", liveTTL)
	e.wake(sub, "Acquire")
	e.release(l, baton.ReasonReleased)
	e.wake(sub, "Release")
	e.acquire(topic, "node-b", liveTTL)
	e.wake(sub, "the successor's Acquire")
}

func testSignalLockExpire(e *env) {
	topic := e.topic("")
	l := e.lapse(e.acquire(topic, "node-a", liveTTL))
	sub := e.subscribe(topic, baton.SignalLock)
	_, err := e.s.Expire(e.ctx, topic)
	e.noErr(err, "Expire of %s epoch %d", l.Holder, l.Epoch)
	e.wake(sub, "Expire wrote the expired record [N2]")
}

func testSignalTopicOnFirstAppend(e *env) {
	sub := e.subscribe("", baton.SignalTopic)
	e.appendN(e.topic(""), 1)
	e.wake(sub, "the first Append to a new topic")
}

func testSignalTopicOnFirstAcquire(e *env) {
	sub := e.subscribe("", baton.SignalTopic)
	e.acquire(e.topic(""), "node-a", liveTTL)
	e.wake(sub, "the first Acquire of a new topic [N2]")
}

func testSignalMask(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 1)
	l := e.acquire(topic, "node-a", liveTTL)
	sub := e.subscribe(topic, baton.SignalAppend|baton.SignalCommit)
	e.commit(l, 0, its)
	e.wake(sub, "Commit, with a subscription to appends and commits")
	e.appendN(topic, 1)
	e.wake(sub, "Append, with a subscription to appends and commits")
}

func testManySubscribers(e *env) {
	topic := e.topic("")
	subs := []baton.Subscription{
		e.subscribe(topic, baton.SignalAppend),
		e.subscribe(topic, baton.SignalAppend),
		e.subscribe(topic, baton.SignalAppend|baton.SignalLock),
	}
	e.appendN(topic, 1)
	for _, sub := range subs {
		e.wake(sub, "Append, with three subscriptions")
	}
}

// testSlowSubscriberNeverBlocks: nobody reads the subscription while many
// changes happen; the writers must not block [N3], and the subscription
// still holds a wake-up.
func testSlowSubscriberNeverBlocks(e *env) {
	topic := e.topic("")
	sub := e.subscribe(topic, baton.SignalAppend|baton.SignalCommit|baton.SignalLock)
	ups := newUpdates(e.t, 50)
	done := make(chan error, 1)
	go func() {
		for i := range ups {
			if _, err := e.s.Append(e.ctx, topic, ups[i:i+1]); err != nil {
				done <- err
				return
			}
		}
		l, err := e.s.Acquire(e.ctx, topic, e.nodeLease("node-a", liveTTL))
		if err == nil {
			err = e.s.Release(e.ctx, l, baton.ReasonReleased)
		}
		done <- err
	}()
	select {
	case err := <-done:
		e.noErr(err, "writes while a subscriber does not read")
	case <-time.After(4 * waitTimeout):
		e.t.Fatal("writers blocked on a subscriber that does not read [N3]")
	}
	e.wake(sub, "50 appends that nobody read")
}

func testCloseSubscription(e *env) {
	topic := e.topic("")
	sub := e.s.Subscribe(topic, baton.SignalAppend)
	sub.Close()
	e.appendN(topic, 1) // must not panic or block [N4]
	other := e.subscribe(topic, baton.SignalAppend)
	e.appendN(topic, 1)
	e.wake(other, "Append, after another subscription was closed")
}

// testSubscribeFunc: a subscription with a function is called after the
// changes it subscribed to, has no channel, and is not called once closed.
func testSubscribeFunc(e *env) {
	topic := e.topic("")
	var calls atomic.Int64
	woke := make(chan struct{}, 1)
	var mu sync.Mutex
	var seen baton.Signal // every signal fn was given
	sub := e.s.SubscribeFunc(topic, baton.SignalAppend|baton.SignalCommit, func(sig baton.Signal) {
		mu.Lock()
		seen |= sig
		mu.Unlock()
		calls.Add(1)
		select {
		case woke <- struct{}{}:
		default:
		}
	})
	if sub == nil {
		e.t.Fatal("SubscribeFunc returned nil")
	}
	defer sub.Close()
	if sub.C() != nil {
		e.t.Error("a SubscribeFunc subscription has a channel")
	}
	called := func(what string) {
		e.t.Helper()
		select {
		case <-woke:
		case <-time.After(waitTimeout):
			e.t.Fatalf("no call within %v after %s [N1]", waitTimeout, what)
		}
	}
	// fn is given what was raised, of the signals it subscribed to.
	given := func(what string, want baton.Signal) {
		e.t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for {
			mu.Lock()
			sig := seen
			mu.Unlock()
			if sig&^(baton.SignalAppend|baton.SignalCommit) != 0 {
				e.t.Fatalf("fn was given signals %b, beyond those subscribed to [N1]", sig)
			}
			if sig&want != 0 {
				return
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("after %s fn was given signals %b, want %b among them [N1]", what, sig, want)
			}
			called(what)
		}
	}
	its := e.appendN(topic, 2)
	called("Append")
	given("Append", baton.SignalAppend)
	l := e.acquire(topic, "node-a", liveTTL) // SignalLock: not subscribed to
	e.commit(l, 0, its)
	called("Commit")
	given("Commit", baton.SignalCommit)

	sub.Close()
	n := calls.Load()
	// A second subscription's call shows that the next change went by.
	after := make(chan struct{}, 1)
	other := e.s.SubscribeFunc(topic, baton.SignalAppend, func(baton.Signal) {
		select {
		case after <- struct{}{}:
		default:
		}
	})
	defer other.Close()
	e.appendN(topic, 1)
	select {
	case <-after:
	case <-time.After(waitTimeout):
		e.t.Fatalf("no call within %v after an Append [N1]", waitTimeout)
	}
	if got := calls.Load(); got != n {
		e.t.Errorf("a closed subscription was called %d more times [N4]", got-n)
	}
}
