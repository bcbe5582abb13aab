package sqlite

import "time"

// Renewals first (docs/design.md, node leases).
//
// A node lease renewal keeps every topic of its node: if it waits for the
// file's write lock past the node lease's trust, the node gives up all its
// topics with no fault at all, the others take them over, and their bulk
// writes (thousands of acquisitions, commits, checkpoints) starve their own
// renewals in turn. SQLite's write lock has no queue: whoever polls first
// after a commit wins, and batches of writes back to back win nearly every
// time. So a renewal announces itself, to every process on the file, while
// it waits and writes: it holds a shared lock on the first byte of the
// PATH-renew file (an open file description lock, Linux). Every other
// writer, before it asks for the write lock, looks whether a renewal is
// announced, and if so waits (up to renewalDefer) for it to pass.

// renewalDefer bounds how long a write stands back for renewals: a
// renewal holds the write lock for well under a millisecond, and a writer
// must not starve either.
const renewalDefer = 50 * time.Millisecond

// standBack waits while another handle announces a renewal, for at most
// renewalDefer.
func (s *Store) standBack() {
	if s.prio == nil {
		return
	}
	for waited := time.Duration(0); waited < renewalDefer && s.prio.announced(); waited += 100 * time.Microsecond {
		time.Sleep(100 * time.Microsecond)
	}
}

// announce announces a renewal of this handle's until the returned func is
// called.
func (s *Store) announce() func() {
	if s.prio == nil {
		return func() {}
	}
	return s.prio.announce()
}
