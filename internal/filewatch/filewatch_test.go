package filewatch_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/filewatch"
	"github.com/baton-pub/baton/internal/poll"
)

// TestWatchReloadsOnChange: a change to any file calls reload once; a
// failed reload is reported, and keeps being tried until it succeeds.
func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte("1"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fs := filewatch.New(a, b, "")
	fs.Mark()
	if fs.Changed() {
		t.Fatal("changed right after Mark")
	}
	var reloads, fails atomic.Int32
	var broken atomic.Bool
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		fs.Watch(5*time.Millisecond, stop, func() error {
			reloads.Add(1)
			if broken.Load() {
				return errors.New("bad file")
			}
			fs.Mark()
			return nil
		}, func(error) { fails.Add(1) })
	}()
	touch := func(f string, d time.Duration) {
		t.Helper()
		at := time.Now().Add(d)
		if err := os.Chtimes(f, at, at); err != nil {
			t.Fatal(err)
		}
	}
	touch(b, time.Minute)
	poll.True(t, 10*time.Second, "a reload after b changed", func() bool { return reloads.Load() == 1 && !fs.Changed() })
	broken.Store(true)
	touch(a, 2*time.Minute)
	poll.True(t, 10*time.Second, "failed reloads reported", func() bool { return fails.Load() >= 2 })
	broken.Store(false)
	poll.True(t, 10*time.Second, "the reload to succeed at last", func() bool { return !fs.Changed() })
	close(stop)
	<-done
}
