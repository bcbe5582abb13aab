//go:build unix

package main

import "syscall"

// openFileLimit is the soft limit on open files (RLIMIT_NOFILE).
func openFileLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}
