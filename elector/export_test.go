package elector

// Checks counts the holder's checks of its lock after a signal.
func (e *Elector) Checks() int64 { return e.checks.Load() }

// IsParked reports whether the elector is a standby parked with no
// goroutine.
func (e *Elector) IsParked() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.parked
}
