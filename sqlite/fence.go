package sqlite

import (
	"context"
	"sync"
	"time"
)

// Fencing a stopped writer (STONITH on one machine).
//
// SQLite's locks are POSIX file locks, held by a process until it releases
// them or dies. A baton process that is stopped (SIGSTOP, a debugger, a
// frozen cgroup) while inside a write transaction holds the WAL write lock
// and stalls every other process on the file: no renewals, no hand-over, no
// ingest. Its lease, checked inside that same transaction, says nothing about
// this. So when one of our writes has waited longer than FenceAfter, the
// store looks up who holds the write lock (Linux: /proc/locks) and, if that
// process is stopped, kills it: its transaction is rolled back by SQLite
// (nothing of it was acknowledged), its locks are freed, and the standbys
// take over. A holder that is running (merely slow) is never killed.

// watchdog runs beside the watcher: it checks the write in flight every
// FenceAfter/4 and fences a stopped holder.
func (s *Store) watchdog(ctx context.Context) {
	if s.opts.FenceAfter <= 0 {
		return
	}
	t := time.NewTicker(max(s.opts.FenceAfter/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		since := s.writes.oldest()
		if since == 0 || time.Since(time.Unix(0, since)) < s.opts.FenceAfter {
			continue
		}
		pids, err := writeLockHolders(s.path + "-shm")
		if err != nil {
			s.log.Debug("fence: read lock holders", "err", err)
			continue
		}
		for _, pid := range pids {
			if err := fenceIfStopped(pid); err != nil {
				s.log.Warn("fence: could not fence the write lock holder", "pid", pid, "err", err)
				continue
			}
		}
	}
}

// beginWrite marks a write as in flight; the returned func ends it.
func (s *Store) beginWrite() func() { return s.writes.begin() }

// writesInFlight tracks when each write in flight started, so that the
// watchdog sees how long the oldest has waited. Tracking only the first of
// concurrent writes is not enough: when it ends (say its request timed out)
// the others go on waiting behind a stopped holder, and would never be
// fenced.
type writesInFlight struct {
	mu     sync.Mutex
	next   uint64
	starts map[uint64]int64 // id -> Unix ns
}

func (w *writesInFlight) begin() func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.starts == nil {
		w.starts = make(map[uint64]int64)
	}
	id := w.next
	w.next++
	w.starts[id] = time.Now().UnixNano()
	return func() {
		w.mu.Lock()
		delete(w.starts, id)
		w.mu.Unlock()
	}
}

// oldest is the start (Unix ns) of the oldest write in flight, 0 if none.
func (w *writesInFlight) oldest() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var o int64
	for _, t := range w.starts {
		if o == 0 || t < o {
			o = t
		}
	}
	return o
}
