package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
)

// What a topic's deletion means to a running node (docs/design.md, "Topic
// lifecycle"): the store fences its lease at once (the publisher's next
// commit is ErrFenced, and the trimmer and checkpointer stop with it), and
// refuses to hand it out again until an Append creates the topic anew. The
// node then stops its elector for the topic and tells TopicDeleted, which
// ends the topic's terminals. The node that served the DELETE does so at
// once (Forget); every node does when its topic listing, woken by the
// delete's SignalTopic, no longer has the topic (prune).
//
// A topic deleted and created again between two listings of a node is one
// topic to that node: its elector goes on (the new topic continues the
// kept ledger), and its terminals read on, or are reset if what they had
// read is gone.

// Forget stops serving a deleted topic: its elector stops (a lease it
// held was ended by the delete), the witness restarts its copy if the
// ledger went too, and TopicDeleted is told. It is safe to
// call for a topic the node does not know, and more than once.
func (n *Node) Forget(topic string) {
	n.mu.Lock()
	e := n.electors[topic]
	delete(n.electors, topic)
	n.mu.Unlock()
	n.stopElectors([]*elector.Elector{e})
	n.restartCopy(topic)
	if n.cfg.TopicDeleted != nil {
		n.cfg.TopicDeleted(topic)
	}
}

// prune forgets the topics that were in the node's previous listing, or
// that it runs an elector for, and that listed (the store's topics now,
// sorted) no longer has: they were deleted. A topic only admitted
// (AdmitTopic) and not yet created is in neither.
func (n *Node) prune(prev, listed []string) {
	gone := make(map[string]struct{})
	for _, topic := range prev {
		gone[topic] = struct{}{}
	}
	n.mu.Lock()
	for topic := range n.electors {
		gone[topic] = struct{}{}
	}
	n.mu.Unlock()
	for topic := range gone {
		if _, ok := slices.BinarySearch(listed, topic); ok {
			continue
		}
		n.log.Info("topic deleted: stop serving it", "topic", topic)
		n.Forget(topic)
	}
}

// stopElectors closes electors (nil ones skipped) at once and waits.
func (n *Node) stopElectors(els []*elector.Elector) {
	var wg sync.WaitGroup
	for _, e := range els {
		if e != nil {
			wg.Go(func() { e.Close() })
		}
	}
	wg.Wait()
}

// copyFits reports whether this node's ledger copy of topic (its
// witness's) may be signed from: it is no longer than the store's ledger.
// A longer one is the log of a topic deleted with ?ledger=delete and
// created again: the new log starts at seq 1, and the checkpointer then
// keeps its own range, built from the store (the witness's alarms about
// the old copy are what an explicit ledger delete costs; docs/operations.md,
// "Retention and deleting topics").
func (n *Node) copyFits(topic string, cur baton.Cursor) bool {
	t := n.cfg.Witness.Tree(topic)
	if t == nil {
		return false
	}
	if t.Size() <= cur.Seq {
		return true
	}
	n.log.Warn("this node's ledger copy is longer than the store's ledger (deleted with ?ledger=delete?): signing from the store",
		"topic", topic, "copy_size", t.Size(), "ledger_size", cur.Seq)
	// Not restarted here: a store that lost writes (a failover) looks the
	// same, and the witness must go on saying so. Only a delete seen by
	// Forget restarts the copy.
	return false
}

// restartCopy restarts the witness's copy of a deleted topic whose ledger
// was deleted too: the store no longer has the copy's last leaf. An empty
// copy is restarted too: a round of the witness may be appending the old
// log's leaves to it right now (the restart runs after that round).
func (n *Node) restartCopy(topic string) {
	w := n.cfg.Witness
	if w == nil {
		return
	}
	t := w.Tree(topic)
	if t == nil {
		return
	}
	if size := t.Size(); size > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		mine, _, err := t.Entry(size)
		if err != nil {
			return
		}
		ls, err := n.store.Leaves(ctx, topic, size-1, 1)
		if err != nil || len(ls) == 1 && ls[0].Seq == mine.Seq && ls[0].ItemHash == mine.ItemHash && ls[0].Epoch == mine.Epoch {
			return // kept (or unreadable now: the witness's alarms will say)
		}
		n.log.Info("the deleted topic's ledger went with it: restarting this node's copy", "topic", topic, "copy_size", size)
	}
	if err := w.Restart(topic); err != nil {
		n.log.Warn("restart ledger copy", "topic", topic, "err", err)
	}
}
