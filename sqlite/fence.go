package sqlite

import (
	"context"
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
		since := s.writeSince.Load()
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
func (s *Store) beginWrite() func() {
	now := time.Now().UnixNano()
	if !s.writeSince.CompareAndSwap(0, now) {
		return func() {}
	}
	return func() { s.writeSince.CompareAndSwap(now, 0) }
}
