package ledger

import (
	"time"

	"github.com/baton-pub/baton"
)

// SetLatestForTest makes w serve proofs against cp for its topic, as if it
// had checked and accepted it (benchmarks of logs too large to publish).
func SetLatestForTest(w *Witness, cp baton.Checkpoint) error {
	tw, err := w.topic(cp.Topic)
	if err != nil {
		return err
	}
	tw.setLatest(cp)
	return nil
}

// WitnessIdle says whether w has no round queued, running or overdue.
func WitnessIdle(w *Witness) bool {
	now := w.clock.Now()
	w.smu.Lock()
	defer w.smu.Unlock()
	return len(w.ready) == 0 && w.busy == 0 && (len(w.due) == 0 || w.due[0].dueAt.After(now))
}

// WitnessNextDue is when w's next delayed round is due (false: none).
func WitnessNextDue(w *Witness) (time.Time, bool) {
	w.smu.Lock()
	defer w.smu.Unlock()
	if len(w.due) == 0 {
		return time.Time{}, false
	}
	return w.due[0].dueAt, true
}
