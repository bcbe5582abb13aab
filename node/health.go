package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// health remembers what the node's readiness depends on beyond a single
// store answer: since when its heartbeats fail, and since when each topic
// it publishes has had items waiting with its cursor still.
type health struct {
	mu          sync.Mutex
	beatFailing time.Time // zero while heartbeats succeed
	beatErr     error
	cursors     map[string]cursorSince
}

type cursorSince struct {
	seq   uint64
	since time.Time
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

// progress records topic's cursor at now and reports whether it is
// stalled: waiting (published by this node, items behind the cursor) with
// the cursor unmoved for longer than after.
func (h *health) progress(topic string, waiting bool, seq uint64, now time.Time, after time.Duration) bool {
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
		h.cursors[topic] = cursorSince{seq: seq, since: now}
		return false
	}
	return now.Sub(c.since) > after
}

// forget drops the topics no longer in the store.
func (h *health) forget(topics []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cursors) == 0 {
		return
	}
	keep := make(map[string]bool, len(topics))
	for _, t := range topics {
		keep[t] = true
	}
	for t := range h.cursors {
		if !keep[t] {
			delete(h.cursors, t)
		}
	}
}

// problems lists why the node cannot do its job, as st (its status, just
// read from the store) and its own state say: its heartbeats have failed
// for more than a lease TTL, a topic it publishes is stalled, a witness
// alarm was raised. (A store that does not answer fails Status itself.)
func (n *Node) problems(st baton.NodeStatus) []baton.Problem {
	var ps []baton.Problem
	now := n.cfg.Clock.Now()
	n.health.mu.Lock()
	if f := n.health.beatFailing; !f.IsZero() && now.Sub(f) > n.cfg.TTL {
		ps = append(ps, baton.Problem{Kind: baton.ProblemHeartbeat,
			Message: fmt.Sprintf("heartbeats failing for %v (%s)", now.Sub(f).Round(time.Millisecond), baton.ErrorCode(n.health.beatErr))})
	}
	n.health.mu.Unlock()
	for _, t := range st.Topics {
		if t.Stalled {
			ps = append(ps, baton.Problem{Kind: baton.ProblemStalled, Topic: t.Topic,
				Message: fmt.Sprintf("published by this node, %d items waiting, cursor at %d for more than %v", t.QueueDepth, t.Cursor.Seq, n.cfg.StallAfter)})
		}
		if t.Ledger != nil && t.Ledger.Alarms > 0 {
			ps = append(ps, baton.Problem{Kind: baton.ProblemLedger, Topic: t.Topic,
				Message: fmt.Sprintf("%d witness alarms; last: %s", t.Ledger.Alarms, t.Ledger.LastAlarm)})
		}
	}
	return ps
}
