package hub

import (
	"context"
	"errors"

	"github.com/baton-pub/baton"
)

// ErrTopicDeleted ends the terminals of a deleted topic (EndTopic): the
// HTTP API writes a "deleted" event as the stream's last.
var ErrTopicDeleted = errors.New("topic deleted")

// EndTopic ends every terminal of topic with ErrTopicDeleted. The node
// calls it when the topic is deleted (docs/design.md, "Topic lifecycle");
// a terminal that subscribes afterwards waits for a topic of that name to
// be created again, as for any unknown topic.
func (h *Hub) EndTopic(topic string) {
	h.mu.Lock()
	f := h.feeds[topic]
	h.mu.Unlock()
	if f == nil {
		return
	}
	f.mu.Lock() // lock order feed.mu → Terminal.mu (terminal.go)
	defer f.mu.Unlock()
	f.recent.reset()
	for t := range f.terms {
		t.fail(ErrTopicDeleted)
	}
}

// checkDeleted ends the feed's terminals if its topic was deleted: the
// cursor went back below what the feed or one of its terminals read (a
// delete takes the cursor with it, and a topic of that name continues the
// kept ledger from the old cursor, or starts again from 0). The feed calls
// it when a wake-up found nothing new (the delete signals SignalCommit), at
// most once per checkGap: a node sees a deletion from its own feeds,
// whatever its topic listing saw.
func (f *feed) checkDeleted(ctx context.Context, last uint64) {
	if last == 0 {
		// The feed started after the delete: its terminals caught up
		// from the store before it.
		f.mu.Lock()
		for t := range f.terms {
			last = max(last, t.Last())
		}
		f.mu.Unlock()
		if last == 0 {
			return
		}
	}
	cur, err := f.h.store.Cursor(ctx, f.topic)
	if err != nil || cur.Seq >= last {
		return
	}
	// Whatever follows, the recent frames are not the store's now: a
	// terminal that starts must read the store (recent.go).
	f.mu.Lock()
	f.recent.reset()
	f.mu.Unlock()
	// A cursor that went back is a deletion only if the topic is gone: a
	// store that lost writes (a Redis failover without wait_replicas, or
	// one whose replicas did not acknowledge) also moves it back, and its
	// terminals must go on when publishing catches up, not be told of a
	// deletion (docs/reliability.md, "Limits").
	if _, err := f.h.store.Topic(ctx, f.topic); !errors.Is(err, baton.ErrNotFound) {
		return
	}
	f.h.log.Info("hub: topic deleted: ending its terminals", "topic", f.topic, "read", last, "cursor", cur.Seq)
	f.mu.Lock()
	defer f.mu.Unlock()
	for t := range f.terms {
		t.fail(ErrTopicDeleted)
	}
}
