package sqlite

import "time"

// Handing the file's write lock on (docs/architecture.md, "SQLite").
//
// SQLite's write lock has no queue: a writer that finds it taken can only
// try again later. Writers slept between tries (0.2 ms doubling to 4 ms),
// so a lock freed just after a try stayed free while several processes'
// writers slept, and a handle with writes queued waited a fixed
// millisecond after each transaction for them. At 1k items/s, one item per
// request, to three processes on one file, those waits were most of an
// item's latency (docs/benchmarks.md, "SQLite latency and single-item
// ingest"). So the lock is handed on:
//
//   - a writer that finds the lock taken announces that it waits (a
//     shared lock on byte 1 of PATH-renew, seen by every handle on the file,
//     priority_linux.go) and tries again at the next wake-up of the bell
//     (bell.go), which every handle hears, or after its sleep at the latest;
//   - a write that commits while a writer waits rings the bell, whether or
//     not it logged a change (signalled);
//   - a handle with more writes queued after a transaction lets a waiting
//     writer go first: it waits for a ring after its own (the other's
//     commit), batchYield at most, and goes on at once if nobody waits.
//
// Without the bell and the announcements (other systems) writers sleep
// between tries and a handle yields batchYield after each transaction, as
// before.

// handing reports whether this handle hands the lock on as above.
func (s *Store) handing() bool { return s.prio != nil && s.bell != nil }

// heardSoFar is the bell's count of wake-ups and the channel closed at the
// next one (nil without a bell: a writer then sleeps between tries).
func (s *Store) heardSoFar() (uint64, <-chan struct{}) {
	if s.bell == nil {
		return 0, nil
	}
	return s.bell.heardSoFar()
}

// announceWaiting announces a writer of this handle waiting for the write
// lock until the returned func.
func (s *Store) announceWaiting() func() {
	if !s.handing() {
		return func() {}
	}
	return s.prio.wait()
}

// othersWait reports whether a writer waits for the write lock.
func (s *Store) othersWait() bool { return s.handing() && s.prio.waited() }

// handOn is called after a transaction when the handle has more writes
// queued; held is the bell's count of wake-ups when the transaction had the
// lock. If a writer waits, handOn waits until a wake-up after the one of
// its own commit's ring (the other writer's commit), batchYield at most;
// without announcements it sleeps batchYield.
func (s *Store) handOn(held uint64) {
	if !s.handing() {
		time.Sleep(batchYield)
		return
	}
	if !s.prio.waited() {
		return
	}
	t := time.NewTimer(batchYield)
	defer t.Stop()
	for {
		n, next := s.bell.heardSoFar()
		if n >= held+2 {
			return
		}
		select {
		case <-next:
		case <-t.C:
			return
		}
	}
}
