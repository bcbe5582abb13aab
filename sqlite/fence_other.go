//go:build !linux

package sqlite

import "errors"

func writeLockHolders(string) ([]int, error) { return nil, errors.New("not supported on this system") }

func fenceIfStopped(int) error { return nil }
