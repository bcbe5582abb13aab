//go:build !unix

// Package procsig names the signals that pause and resume a process
// (SIGSTOP and SIGCONT), which the tests' and the bench's faults send, on
// systems that have them; elsewhere sending them fails.
package procsig

// No SIGSTOP or SIGCONT here: os.Process.Signal refuses a signal it does
// not know, so a pause fails.
var (
	Stop = unsupported("SIGSTOP")
	Cont = unsupported("SIGCONT")
)

type unsupported string

func (s unsupported) String() string { return string(s) }
func (unsupported) Signal()          {}
