package node

import (
	"context"
	"errors"
	"slices"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Status reports the node as it sees itself and the store: its topic
// counts, members and problems, and the statuses of its first limit topics
// in name order (none if limit is 0; TopicStatuses reads any others).
//
// Its store reads do not grow with the topics in the store (GET /v1/status
// answers in milliseconds at 10,000 topics): one listing of the topics,
// one of the members, three reads per topic of the page, and two per topic
// of the stall check's batch (see checkStalls). The counts come from the
// listing and the members' heartbeats, not from every topic's lock.
func (n *Node) Status(ctx context.Context, limit int) (wire.Status, error) {
	st := wire.Status{NodeStatus: baton.NodeStatus{Node: n.cfg.Node, Addr: n.cfg.Addr, Store: n.cfg.Store,
		StartedAt: n.start, LeaseTTL: n.cfg.TTL}}
	topics, err := n.store.Topics(ctx)
	if err != nil {
		return st, err
	}
	topics = slices.Clone(topics)
	slices.Sort(topics)
	page, next := wire.PageTopics(topics, "", limit)
	if st.Topics, err = n.TopicStatuses(ctx, page); err != nil {
		return st, err
	}
	st.TopicsNext = next
	st.Members, err = n.store.Members(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return st, err
	}
	publishing := n.Publishing()
	st.Counts = wire.TopicCounts{Topics: len(topics), Publishing: len(publishing)}
	for _, m := range st.Members {
		st.Counts.Held += m.Leases
	}
	st.Counts.Held = min(st.Counts.Held, len(topics))
	st.Counts.Unheld = len(topics) - st.Counts.Held
	if err := n.checkStalls(ctx, publishing); err != nil {
		return st, err
	}
	st.Problems = n.problems(topics)
	return st, nil
}

// TopicStatuses reads the status of each of topics as this node sees it,
// in the order given: three store reads per topic (its lock, cursor and
// queue). A topic not in the store is reported empty.
func (n *Node) TopicStatuses(ctx context.Context, topics []string) ([]baton.TopicStatus, error) {
	active := n.Active()
	out := make([]baton.TopicStatus, 0, len(topics))
	for _, topic := range topics {
		ts := baton.TopicStatus{Topic: topic, Role: baton.RoleStandby, Terminals: n.cfg.Terminals(topic)}
		if _, ok := active[topic]; ok {
			ts.Role = baton.RoleActive
		}
		lock, err := n.store.Lock(ctx, topic)
		if err != nil {
			return nil, err
		}
		ts.Held, ts.Holder, ts.Epoch = lock.Held, lock.Lease.Holder, lock.Lease.Epoch
		if lock.Held {
			ts.ExpiresAt = lock.Lease.ExpiresAt
		}
		if ts.Cursor, err = n.store.Cursor(ctx, topic); err != nil {
			return nil, err
		}
		info, err := n.store.Topic(ctx, topic)
		if err != nil && !errors.Is(err, baton.ErrNotFound) {
			return nil, err
		}
		ts.FirstSeq, ts.LastSeq = info.FirstSeq, info.LastSeq
		if info.LastSeq > ts.Cursor.Seq {
			ts.QueueDepth = info.LastSeq - ts.Cursor.Seq
		}
		if n.cfg.Witness != nil {
			ts.Ledger = n.cfg.Witness.Status(topic)
		}
		ts.Stalled = n.health.progress(topic, ts.Role == baton.RoleActive && ts.QueueDepth > 0, ts.Cursor.Seq, ts.QueueDepth,
			n.cfg.Clock.Now(), n.cfg.StallAfter)
		out = append(out, ts)
	}
	return out, nil
}

// Publishing lists the topics this node publishes now, in name order.
func (n *Node) Publishing() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.active))
	for t := range n.active {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
