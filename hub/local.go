package hub

import (
	"github.com/baton-pub/baton"
)

// The holder's hand-off: on the node that publishes a topic, the feed takes
// each commit's items from the publisher (Published) instead of reading
// back from the store what the publisher just wrote there, and skips the
// read the store's commit signal would cause. Only while this node's
// publisher runs (Publishing): every commit to the topic is then its own,
// since the lease fences every other writer; when it stops, the feed reads
// the store at once and on every signal again. A batch that does not follow
// the feed's position (a feed started after it, or batches dropped past
// Options.ReadBatch kept) makes the feed read the store, as without a hand-off.

// Publishing tells the hub whether this node's publisher of topic runs
// (on: it has the lease and will call Published for each of its commits).
func (h *Hub) Publishing(topic string, on bool) {
	h.mu.Lock()
	if on {
		if h.local == nil {
			h.local = make(map[string]bool)
		}
		h.local[topic] = true
	} else {
		delete(h.local, topic)
	}
	f := h.feeds[topic]
	h.mu.Unlock()
	if f == nil {
		return
	}
	f.mu.Lock()
	f.local = on
	if !on {
		f.readStore = true // what another node commits next is signalled only
		f.pending, f.pendingItems = nil, 0
	}
	f.mu.Unlock()
	notify(f.kick)
}

// Published hands the hub the items a commit of this node's publisher of
// topic made durable, in order, as the store's Published returns them. It
// never blocks; ps must not be changed after.
func (h *Hub) Published(topic string, ps []baton.Published) {
	if len(ps) == 0 {
		return
	}
	h.mu.Lock()
	f := h.feeds[topic]
	h.mu.Unlock()
	if f == nil {
		return
	}
	f.mu.Lock()
	if !f.local {
		f.mu.Unlock()
		return
	}
	// Bounded as a store read is (ReadBatch), so that what the feed takes
	// at once fits a terminal's queue.
	if f.pendingItems+len(ps) > h.opts.ReadBatch {
		// The feed fell behind: drop what is kept, read the store.
		f.pending, f.pendingItems = nil, 0
		f.readStore = true
	} else {
		f.pending = append(f.pending, ps)
		f.pendingItems += len(ps)
	}
	f.mu.Unlock()
	notify(f.kick)
}

// takeLocal returns the kept items that follow last, whether the store
// must be read (a gap, kept items dropped, or the publisher stopped; or
// store true), and whether this node's publisher runs (local: else a
// wake-up without store is another node's commit, pumpRecent).
func (f *feed) takeLocal(last uint64, store bool) ([]baton.Published, bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readStore {
		f.readStore = false
		store = true
	}
	var out []baton.Published
	for len(f.pending) > 0 {
		ps := f.pending[0]
		if next := last + uint64(len(out)); ps[0].Seq > next+1 {
			break // a gap: the store has what lies between
		}
		f.pending = f.pending[1:]
		f.pendingItems -= len(ps)
		for i := range ps {
			if ps[i].Seq == last+uint64(len(out))+1 {
				out = append(out, ps[i])
			}
		}
	}
	if len(f.pending) > 0 {
		store = true
	}
	if len(f.pending) == 0 {
		f.pending = nil
	}
	return out, store, f.local
}

// pumpRecent delivers, after a commit of another node was signalled, the
// items the store heard with the commit messages (baton.RecentPublished:
// Redis carries a small commit's items in its message), with no read. It
// returns the new position, whether nothing was new, and whether the store
// must be read after all: it cannot vouch for what follows last (an engine
// without it, a big commit, a possible loss of messages).
func (f *feed) pumpRecent(last uint64) (uint64, bool, bool, error) {
	rp, ok := f.h.store.(baton.RecentPublished)
	if !ok {
		return last, false, true, nil
	}
	for n := 0; ; n++ {
		ps, ok := rp.RecentPublished(f.topic, last, f.h.opts.ReadBatch)
		switch {
		case !ok:
			return last, false, true, nil
		case len(ps) == 0:
			return last, n == 0, false, nil
		}
		frames, err := newFrames(ps)
		if err != nil {
			return last, false, false, err
		}
		f.deliver(frames)
		last = ps[len(ps)-1].Seq
	}
}

// notify wakes the goroutine on ch without blocking (a wake pending is
// enough).
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
