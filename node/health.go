package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// stallBatch bounds the topics one status read checks for a stall (two
// store reads each), so that a node publishing thousands of topics answers
// GET /v1/status and /readyz in milliseconds: the checks go round the
// topics it publishes, stallBatch at a time, and a stall is seen within
// StallAfter plus one round (docs/api.md, "Health").
const stallBatch = 64

// health remembers what the node's readiness depends on beyond a single
// store answer: since when its heartbeats fail, and since when each topic
// it publishes has had items waiting with its cursor still.
type health struct {
	mu          sync.Mutex
	beatFailing time.Time // zero while heartbeats succeed
	beatErr     error
	notifyLost  time.Time // zero while the store's notifications are subscribed
	notifyTold  bool      // the loss is a problem, and was logged as one
	cursors     map[string]cursorSince
	// checked is the topic the stall check read last: the next check
	// goes on after it, in name order.
	checked string
}

// cursorSince is what the last look at a waiting topic found.
type cursorSince struct {
	seq, depth uint64
	since      time.Time
	stalled    bool
}

func (h *health) heartbeat(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.beatFailing, h.beatErr = time.Time{}, nil
		return
	}
	if h.beatFailing.IsZero() {
		h.beatFailing = now
	}
	h.beatErr = err
}

// checkNotifications records whether the store's change notifications
// are subscribed (Config.Notifications), on the node's clock: a problem
// once lost for longer than a lease TTL, so that a connection dropped and
// subscribed again at once is not one. The problem's start and end are
// logged once each.
func (n *Node) checkNotifications() {
	if n.cfg.Notifications == nil {
		return
	}
	lost := n.cfg.Notifications() != nil
	now := n.cfg.Clock.Now()
	h := &n.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !lost && h.notifyTold:
		n.log.Info("store change notifications back: ready", "lost_for", now.Sub(h.notifyLost))
		h.notifyLost, h.notifyTold = time.Time{}, false
	case !lost:
		h.notifyLost = time.Time{}
	case h.notifyLost.IsZero():
		h.notifyLost = now
	case !h.notifyTold && now.Sub(h.notifyLost) > n.cfg.TTL:
		h.notifyTold = true
		n.log.Warn("store change notifications lost and not re-established: not ready; hand-overs wait for lease expiry",
			"lost_for", now.Sub(h.notifyLost))
	}
}

// progress records topic's cursor (seq, with depth items behind it) at now
// and reports whether it is stalled: waiting (published by this node,
// items behind the cursor) with the cursor unmoved for longer than after.
func (h *health) progress(topic string, waiting bool, seq, depth uint64, now time.Time, after time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !waiting {
		delete(h.cursors, topic)
		return false
	}
	if h.cursors == nil {
		h.cursors = make(map[string]cursorSince)
	}
	c, ok := h.cursors[topic]
	if !ok || c.seq != seq {
		c = cursorSince{seq: seq, since: now}
	}
	c.depth, c.stalled = depth, now.Sub(c.since) > after
	h.cursors[topic] = c
	return c.stalled
}

// due returns the next topics to check for a stall among publishing (the
// topics this node publishes, in name order): at most batch of them, going
// round after the one checked last. It forgets the topics this node no
// longer publishes.
func (h *health) due(publishing []string, batch int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t := range h.cursors {
		if _, ok := slices.BinarySearch(publishing, t); !ok {
			delete(h.cursors, t)
		}
	}
	if len(publishing) <= batch {
		return publishing
	}
	i, found := slices.BinarySearch(publishing, h.checked)
	if found {
		i++
	}
	out := make([]string, 0, batch)
	for len(out) < batch {
		out = append(out, publishing[(i+len(out))%len(publishing)])
	}
	h.checked = out[len(out)-1]
	return out
}

// checkStalls reads the cursor and queue of the next stallBatch topics
// this node publishes (health.due) and records their progress: the stall
// check reads the topics this node publishes, never every topic, since
// only a topic this node publishes can be stalled by it.
//
// The batch's topics are read statusReaders at a time (readEach): one
// after the other, their 128 reads were most of a status call's time on
// Redis.
func (n *Node) checkStalls(ctx context.Context, publishing []string) error {
	due := n.health.due(publishing, stallBatch)
	return readEach(len(due), func(i int) error { return n.checkStall(ctx, due[i]) })
}

// checkStall reads one topic's cursor and queue for checkStalls.
func (n *Node) checkStall(ctx context.Context, topic string) error {
	cur, err := n.store.Cursor(ctx, topic)
	if err != nil {
		return err
	}
	info, err := n.store.Topic(ctx, topic)
	if err != nil && !errors.Is(err, baton.ErrNotFound) {
		return err
	}
	var depth uint64
	if info.LastSeq > cur.Seq {
		depth = info.LastSeq - cur.Seq
	}
	n.health.progress(topic, depth > 0, cur.Seq, depth, n.cfg.Clock.Now(), n.cfg.StallAfter)
	return nil
}

// problems lists why the node cannot do its job, as its own state says:
// its heartbeats have failed for more than a lease TTL, a topic it
// publishes was stalled at its last check, the witness raised an alarm on
// one of topics (its copy is in memory: no store read). A store that does
// not answer fails Status itself.
func (n *Node) problems(topics []string) []baton.Problem {
	var ps []baton.Problem
	now := n.cfg.Clock.Now()
	// The node lease first, under its own lock (never nested in health's).
	n.lease.mu.Lock()
	since := n.lease.untrusted
	n.lease.mu.Unlock()
	if !since.IsZero() && now.Sub(since) > n.cfg.TTL {
		ps = append(ps, baton.Problem{Kind: baton.ProblemLease,
			Message: fmt.Sprintf("node lease not renewed for %v: this node publishes nothing", now.Sub(since).Round(time.Millisecond))})
	}
	n.health.mu.Lock()
	if f := n.health.beatFailing; !f.IsZero() && now.Sub(f) > n.cfg.TTL {
		ps = append(ps, baton.Problem{Kind: baton.ProblemHeartbeat,
			Message: fmt.Sprintf("heartbeats failing for %v (%s)", now.Sub(f).Round(time.Millisecond), baton.ErrorCode(n.health.beatErr))})
	}
	if f := n.health.notifyLost; n.health.notifyTold {
		ps = append(ps, baton.Problem{Kind: baton.ProblemNotify,
			Message: fmt.Sprintf("store change notifications lost for %v and not re-established: hand-overs wait for lease expiry", now.Sub(f).Round(time.Millisecond))})
	}
	var stalled []baton.Problem
	for t, c := range n.health.cursors {
		if c.stalled {
			stalled = append(stalled, baton.Problem{Kind: baton.ProblemStalled, Topic: t,
				Message: fmt.Sprintf("published by this node, %d items waiting, cursor at %d for more than %v", c.depth, c.seq, n.cfg.StallAfter)})
		}
	}
	n.health.mu.Unlock()
	slices.SortFunc(stalled, func(a, b baton.Problem) int { return strings.Compare(a.Topic, b.Topic) })
	ps = append(ps, stalled...)
	if n.cfg.Witness != nil {
		for _, a := range n.cfg.Witness.Alarmed() {
			if _, ok := slices.BinarySearch(topics, a.Topic); ok {
				ps = append(ps, baton.Problem{Kind: baton.ProblemLedger, Topic: a.Topic,
					Message: fmt.Sprintf("%d witness alarms; last: %s", a.Alarms, a.Last)})
			}
		}
	}
	return ps
}
