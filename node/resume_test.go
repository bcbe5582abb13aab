package node

import (
	"context"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/clocktest"
)

// TestResumeGate: wait passes at once while no lease resumes, waits while
// one does until it is counted out (whatever the number of calls to its
// done) or max passes, and gives up with its context.
func TestResumeGate(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	g := newResumeGate(clock, 0)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if !g.wait(cancelled, time.Hour) {
		t.Fatal("no lease resuming: wait did not pass")
	}

	a, b := g.begin(), g.begin()
	if g.wait(cancelled, time.Hour) {
		t.Fatal("two leases resuming: wait passed")
	}
	a()
	a() // counted out once
	if g.wait(cancelled, time.Hour) {
		t.Fatal("one lease still resuming: wait passed")
	}
	passed := make(chan bool, 1)
	go func() { passed <- g.wait(context.Background(), time.Hour) }()
	b()
	if !<-passed {
		t.Fatal("wait did not pass once every lease resumed")
	}

	// Resuming again: wait passes after max on the clock.
	c := g.begin()
	defer c()
	go func() { passed <- g.wait(context.Background(), time.Second) }()
	waitTimers(t, clock, 1)
	clock.Advance(time.Second)
	if !<-passed {
		t.Fatal("wait did not pass after max")
	}
}

// TestResumeGateQuiet: after the last lease resumed (or race ended) the
// gate stays shut for its quiet time, and a lease that begins within it
// shuts it again until that one too is counted out and the quiet time has
// passed once more: the gate opens after a wave, not in a lull within it.
func TestResumeGateQuiet(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	g := newResumeGate(clock, 100*time.Millisecond)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	g.begin()()
	if g.wait(cancelled, time.Hour) {
		t.Fatal("a lease resumed just now: wait passed within the quiet time")
	}
	passed := make(chan bool, 1)
	go func() { passed <- g.wait(context.Background(), time.Hour) }()
	waitTimers(t, clock, 2) // the deadline and the quiet time
	clock.Advance(60 * time.Millisecond)
	b := g.begin() // a lull, not the end of the wave
	clock.Advance(60 * time.Millisecond)
	waitTimers(t, clock, 1) // the quiet timer fired; waiting for b
	select {
	case <-passed:
		t.Fatal("wait passed while a lease resumed")
	default:
	}
	b()
	waitTimers(t, clock, 2)
	clock.Advance(99 * time.Millisecond)
	select {
	case <-passed:
		t.Fatal("wait passed before the quiet time after the last lease")
	default:
	}
	clock.Advance(time.Millisecond)
	if !<-passed {
		t.Fatal("wait did not pass after the quiet time")
	}
	if !g.wait(cancelled, time.Hour) {
		t.Fatal("settled: wait did not pass at once")
	}
}

// waitTimers waits until clock has n timers armed.
func waitTimers(t *testing.T, clock *clocktest.Clock, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clock.Timers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers armed, want %d", clock.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestResumeGateWaitShut: waitShut's bound runs from when the gate shut,
// not from the call: once the gate has been shut that long, every call
// passes at once while it stays shut; when it shuts again after opening,
// the bound runs again.
func TestResumeGateWaitShut(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	g := newResumeGate(clock, 100*time.Millisecond)
	ctx := context.Background()
	if !g.waitShut(ctx, time.Second) {
		t.Fatal("never shut: waitShut did not pass")
	}
	done := g.begin()
	passed := make(chan bool, 1)
	go func() { passed <- g.waitShut(ctx, time.Second) }()
	waitTimers(t, clock, 1)
	clock.Advance(600 * time.Millisecond)
	select {
	case <-passed:
		t.Fatal("passed 600 ms after the gate shut, bound 1 s")
	default:
	}
	// A second caller now waits only what is left of the bound.
	go func() { passed <- g.waitShut(ctx, time.Second) }()
	waitTimers(t, clock, 2)
	clock.Advance(400 * time.Millisecond)
	for range 2 {
		if !<-passed {
			t.Fatal("waitShut did not pass at the bound")
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if !g.waitShut(cancelled, time.Second) {
		t.Fatal("shut past the bound: a call did not pass at once")
	}

	// Open (counted out, quiet time passed), then shut again: the bound
	// runs from the new shut.
	done()
	clock.Advance(200 * time.Millisecond)
	defer g.begin()()
	if g.waitShut(cancelled, time.Second) {
		t.Fatal("shut again: waitShut passed at once")
	}
}
