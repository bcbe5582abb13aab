package ledger

import "github.com/baton-pub/baton"

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
