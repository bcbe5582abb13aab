//go:build !linux

package sqlite

import "errors"

// bell has no cross-process wake-up here: the watchers poll.
type bell struct{}

func openBell(string) (*bell, error)                { return nil, errors.New("not supported on this system") }
func (*bell) ring()                                 {}
func (*bell) heard() <-chan struct{}                { return nil }
func (*bell) heardSoFar() (uint64, <-chan struct{}) { return 0, nil }
func (*bell) close() error                          { return nil }
