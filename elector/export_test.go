package elector

// Parked reports whether the elector is a standby parked with no goroutine.
func (e *Elector) Parked() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.parked
}
