package sqlite

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// renewals is the PATH-renew file, opened twice: its own renewals are
// announced through one open file description, and the others' looked for
// through the other (a lock is never in conflict with its own description).
// Byte 0 announces a renewal (priority.go), byte 1 a writer waiting for
// the file's write lock (turn.go).
type renewals struct {
	mine, look *os.File

	mu      sync.Mutex
	waiting int // this handle's writers that announce byte 1
}

const (
	renewalByte = 0
	waitingByte = 1
)

func openRenewals(path string) (*renewals, error) {
	mine, err := os.OpenFile(path+"-renew", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	look, err := os.OpenFile(path+"-renew", os.O_RDWR, 0)
	if err != nil {
		mine.Close()
		return nil, err
	}
	return &renewals{mine: mine, look: look}, nil
}

func (r *renewals) close() error {
	return errors.Join(r.mine.Close(), r.look.Close())
}

// announce takes the shared lock on byte 0 until the returned func.
func (r *renewals) announce() func() {
	if !r.set(renewalByte, unix.F_RDLCK) {
		return func() {}
	}
	return func() { r.set(renewalByte, unix.F_UNLCK) }
}

// announced reports whether another description holds the lock on byte 0.
func (r *renewals) announced() bool { return r.held(renewalByte) }

// wait announces a writer of this handle waiting for the write lock until
// the returned func: the shared lock on byte 1, held while any of them
// waits (one description holds one lock, so they are counted).
func (r *renewals) wait() func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting == 0 && !r.set(waitingByte, unix.F_RDLCK) {
		return func() {}
	}
	r.waiting++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.waiting--; r.waiting == 0 {
			r.set(waitingByte, unix.F_UNLCK)
		}
	}
}

// waited reports whether a writer waits for the write lock: another
// handle's, or one of this handle's own (they announce through the other
// description).
func (r *renewals) waited() bool { return r.held(waitingByte) }

func (r *renewals) set(b int64, typ int16) bool {
	lk := unix.Flock_t{Type: typ, Start: b, Len: 1}
	return unix.FcntlFlock(r.mine.Fd(), unix.F_OFD_SETLK, &lk) == nil
}

func (r *renewals) held(b int64) bool {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: b, Len: 1}
	if err := unix.FcntlFlock(r.look.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}
