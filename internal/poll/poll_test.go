package poll

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsOnceCondHolds(t *testing.T) {
	var calls atomic.Int32
	err := Wait(time.Minute, func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("Wait = %v after %d calls, want nil after 3", err, calls.Load())
	}
}

func TestWaitReportsLastError(t *testing.T) {
	var calls atomic.Int32
	err := Wait(0, func() error { return fmt.Errorf("attempt %d", calls.Add(1)) })
	if err == nil || err.Error() != "attempt 1" {
		t.Fatalf("Wait = %v, want the error of its one attempt", err)
	}
}

// fatalTB records Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestUntilFailsWithWhatAndLastError(t *testing.T) {
	tb := &fatalTB{TB: t}
	Until(tb, 0, "the cursor", func() error { return errors.New("cursor at 3") })
	if want := "timed out after 0s waiting for the cursor: cursor at 3"; tb.msg != want {
		t.Fatalf("message %q, want %q", tb.msg, want)
	}
	tb.msg = ""
	True(tb, time.Minute, "true", func() bool { return true })
	if tb.msg != "" {
		t.Fatalf("True failed on a true condition: %s", tb.msg)
	}
}
