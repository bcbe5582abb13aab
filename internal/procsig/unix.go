//go:build unix

// Package procsig names the signals that pause and resume a process
// (SIGSTOP and SIGCONT), which the tests' and the bench's faults send, on
// systems that have them; elsewhere sending them fails.
package procsig

import "syscall"

// Stop pauses a process; Cont resumes it.
const (
	Stop = syscall.SIGSTOP
	Cont = syscall.SIGCONT
)
