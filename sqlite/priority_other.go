//go:build !linux

package sqlite

import "errors"

// renewals has no cross-process announcement here: renewals compete for the
// write lock like any write.
type renewals struct{}

func openRenewals(string) (*renewals, error) { return nil, errors.New("not supported on this system") }
func (*renewals) close() error               { return nil }
func (*renewals) announce() func()           { return func() {} }
func (*renewals) announced() bool            { return false }
func (*renewals) wait() func()               { return func() {} }
func (*renewals) waited() bool               { return false }
