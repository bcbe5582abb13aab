package sqlite

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renewals is the PATH-renew file, opened twice: its own renewals are
// announced through one open file description, and the others' looked for
// through the other (a lock is never in conflict with its own description).
type renewals struct {
	mine, look *os.File
}

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
	lk := unix.Flock_t{Type: unix.F_RDLCK, Start: 0, Len: 1}
	if err := unix.FcntlFlock(r.mine.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		return func() {}
	}
	return func() {
		lk := unix.Flock_t{Type: unix.F_UNLCK, Start: 0, Len: 1}
		_ = unix.FcntlFlock(r.mine.Fd(), unix.F_OFD_SETLK, &lk)
	}
}

// announced reports whether another description holds the lock on byte 0.
func (r *renewals) announced() bool {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 1}
	if err := unix.FcntlFlock(r.look.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}
