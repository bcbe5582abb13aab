// Package poll is how tests wait for a condition that other goroutines or
// processes make true: poll it with a deadline instead of sleeping, and on
// timeout say what was awaited and why it did not hold.
package poll

import (
	"errors"
	"testing"
	"time"
)

// interval bounds the pause between two polls; polls start faster, so a
// condition that holds almost at once costs little.
const interval = 10 * time.Millisecond

// Until calls cond until it returns nil. If d passes first, it fails tb
// (from the test's goroutine, as Fatal requires) with what and the last
// error cond returned.
func Until(tb testing.TB, d time.Duration, what string, cond func() error) {
	tb.Helper()
	if err := Wait(d, cond); err != nil {
		tb.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
	}
}

// True is Until for a condition without an error to report.
func True(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	Until(tb, d, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition still false")

// Wait calls cond until it returns nil and returns nil, or returns cond's
// last error once d has passed. It is for goroutines other than the test's,
// which must not call tb.Fatal.
func Wait(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(pause) // the poll interval: cond is what is waited on
		pause = min(2*pause, interval)
	}
}

// Pending reports whether a wake-up is waiting on sub (a
// baton.Subscription), and takes it: for asserting that nothing was
// signalled, once something signalled after it has been heard.
func Pending(sub interface{ C() <-chan struct{} }) bool {
	select {
	case <-sub.C():
		return true
	default:
		return false
	}
}
