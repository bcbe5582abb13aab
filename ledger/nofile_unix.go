//go:build unix

package ledger

import "syscall"

// openFileLimit is the process's soft limit of open files (0 if unknown).
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int(min(r.Cur, 1<<30)) // RLIM_INFINITY too
}
