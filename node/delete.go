package node

import (
	"slices"
	"sync"

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
// held was ended by the delete) and TopicDeleted is told. It is safe to
// call for a topic the node does not know, and more than once.
func (n *Node) Forget(topic string) {
	n.mu.Lock()
	e := n.electors[topic]
	delete(n.electors, topic)
	n.mu.Unlock()
	n.stopElectors([]*elector.Elector{e})
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
