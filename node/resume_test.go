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
	g := newResumeGate()
	clock := clocktest.New(time.Unix(1000, 0))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if !g.wait(cancelled, clock, time.Hour) {
		t.Fatal("no lease resuming: wait did not pass")
	}

	a, b := g.begin(), g.begin()
	if g.wait(cancelled, clock, time.Hour) {
		t.Fatal("two leases resuming: wait passed")
	}
	a()
	a() // counted out once
	if g.wait(cancelled, clock, time.Hour) {
		t.Fatal("one lease still resuming: wait passed")
	}
	passed := make(chan bool, 1)
	go func() { passed <- g.wait(context.Background(), clock, time.Hour) }()
	b()
	if !<-passed {
		t.Fatal("wait did not pass once every lease resumed")
	}

	// Resuming again: wait passes after max on the clock.
	c := g.begin()
	defer c()
	go func() { passed <- g.wait(context.Background(), clock, time.Second) }()
	waitTimers(t, clock, 1)
	clock.Advance(time.Second)
	if !<-passed {
		t.Fatal("wait did not pass after max")
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
