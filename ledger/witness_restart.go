package ledger

import "fmt"

// Restart drops this node's copy of a followed topic's log and what the
// witness accepted of it, and starts over from the store's ledger. It is
// for a topic deleted with its ledger (DELETE /v1/topics/{topic}
// ?ledger=delete, docs/design.md "Topic lifecycle"): the store's new log of
// that name starts at seq 1, which the old copy would refuse as a rewrite.
// Only an explicit delete may call it: a witness never forgets a log on its
// own, or a store that rolled its ledger back would go unnoticed. The
// reset happens in the topic's next round, which it queues.
func (w *Witness) Restart(topic string) error {
	tw, err := w.topic(topic)
	if err != nil {
		return err
	}
	tw.restart.Store(true)
	w.smu.Lock()
	w.readyLocked(tw)
	w.smu.Unlock()
	return nil
}

// restarted empties the copy and the witness's memory of the topic, if
// Restart asked for it. Only the topic's round calls it.
func (tw *topicWitness) restarted() error {
	if !tw.restart.Swap(false) {
		return nil
	}
	if err := tw.tree.Reset(); err != nil {
		tw.restart.Store(true) // the next round tries again
		return fmt.Errorf("restart ledger copy of %s: %w", tw.topic, err)
	}
	tw.forget()
	// The alarms (and a halt) were about the log that was deleted.
	tw.alarms.Store(0)
	tw.log.Info("ledger copy restarted: the topic's ledger was deleted")
	return nil
}
