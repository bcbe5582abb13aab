package hub

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// Data is the item's JSON object, the data of its SSE frame: the one
// encoding a multi-topic stream and a WebSocket splice their topic into
// (http/multi.go), so that an item is still encoded once per node.
func (f Frame) Data() []byte {
	n := len("id: ") + len("\nevent: item\ndata: ")
	for v := f.Item.Seq; ; v /= 10 {
		n++
		if v < 10 {
			break
		}
	}
	return f.SSE[n : len(f.SSE)-2]
}

// topicRecheckFactor times Options.Recheck is how often the topic watcher
// lists topics without a wake-up, the fallback for a lost hint.
const topicRecheckFactor = 5

// topicWatcher tells watchers (multi-topic streams with patterns) of the
// topics in the store: one goroutine per hub, alive while it has
// watchers, lists the store's topics on SignalTopic and reports the new
// ones. Guarded by Hub.mu except known, which only its goroutine touches.
type topicWatcher struct {
	watchers map[*TopicWatch]struct{}
	running  bool
	wake     chan struct{} // capacity 1: a watcher joined
}

// TopicWatch is one watcher's registration.
type TopicWatch struct {
	h  *Hub
	fn func(topics []string)
	// fresh: the watcher gets the whole listing next, not only what is
	// new (guarded by Hub.mu).
	fresh bool
	once  sync.Once
}

// WatchTopics calls fn with topics of the store: first every topic of the
// first listing after the call, then each topic that appears later (a
// topic may be reported more than once, and topics deleted are not
// reported: a terminal learns that from ErrTopicDeleted). fn runs on the
// watcher goroutine with no lock held and must not block for long. Stop
// the watch with Close.
func (h *Hub) WatchTopics(fn func(topics []string)) (*TopicWatch, error) {
	w := &TopicWatch{h: h, fn: fn, fresh: true}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateStarted {
		return nil, baton.ErrClosed
	}
	tw := &h.topics
	if tw.watchers == nil {
		tw.watchers = make(map[*TopicWatch]struct{})
		tw.wake = make(chan struct{}, 1)
	}
	tw.watchers[w] = struct{}{}
	if !tw.running {
		tw.running = true
		h.wg.Add(1)
		go h.watchTopics(h.ctx)
	}
	select {
	case tw.wake <- struct{}{}:
	default:
	}
	return w, nil
}

// Close ends the watch. fn may still be called once after Close returns,
// with a listing under way: its caller must ignore that call.
func (w *TopicWatch) Close() {
	w.once.Do(func() {
		w.h.mu.Lock()
		delete(w.h.topics.watchers, w)
		w.h.mu.Unlock()
	})
}

// watchTopics is the watcher goroutine.
func (h *Hub) watchTopics(ctx context.Context) {
	defer h.wg.Done()
	sub := h.store.Subscribe("", baton.SignalTopic)
	defer sub.Close()
	tick := time.NewTicker(topicRecheckFactor * h.opts.Recheck)
	defer tick.Stop()
	known := make(map[string]struct{})
	failing := false
	for {
		h.mu.Lock()
		if len(h.topics.watchers) == 0 || ctx.Err() != nil {
			h.topics.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		topics, err := h.store.Topics(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			h.log.Warn("hub: list topics for patterns", "err", err)
		case err == nil:
			failing = false
			h.reportTopics(known, topics)
		}
		select {
		case <-ctx.Done():
		case <-sub.C():
		case <-tick.C:
		case <-h.topics.wake:
		}
	}
}

// reportTopics calls every watcher with what is new to it.
func (h *Hub) reportTopics(known map[string]struct{}, topics []string) {
	var added []string
	for _, t := range topics {
		if _, ok := known[t]; !ok {
			added = append(added, t)
		}
	}
	clear(known)
	for _, t := range topics {
		known[t] = struct{}{}
	}
	h.mu.Lock()
	type call struct {
		w      *TopicWatch
		topics []string
	}
	calls := make([]call, 0, len(h.topics.watchers))
	for w := range h.topics.watchers {
		switch {
		case w.fresh:
			w.fresh = false
			calls = append(calls, call{w, topics})
		case len(added) > 0:
			calls = append(calls, call{w, added})
		}
	}
	h.mu.Unlock()
	for _, c := range calls {
		c.w.fn(slices.Clip(c.topics))
	}
}
