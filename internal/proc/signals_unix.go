//go:build unix

package proc

import "syscall"

// Pausing and resuming a process: SIGSTOP and SIGCONT, on Unix only.
const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
