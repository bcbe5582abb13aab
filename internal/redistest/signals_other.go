//go:build !unix

package redistest

// No SIGSTOP or SIGCONT here: a process cannot be paused, and sending
// these fails (os.Process.Signal refuses a signal it does not know).
var (
	sigStop = unsupportedSignal("SIGSTOP")
	sigCont = unsupportedSignal("SIGCONT")
)

type unsupportedSignal string

func (s unsupportedSignal) String() string { return string(s) }
func (unsupportedSignal) Signal()          {}
