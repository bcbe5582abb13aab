package node

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Status reports the node as it sees itself and the store: its topic
// counts, members and problems, and the statuses of its first limit topics
// in name order (none if limit is 0; TopicStatuses reads any others).
//
// Its store reads do not grow with the topics in the store (GET /v1/status
// answers in milliseconds at 10,000 topics): the members, three reads per
// topic of the page, and two per topic of the stall check's batch (see
// checkStalls). The topics are those the node knows (topicNames), and the
// counts come from them and the members' heartbeats, not from every
// topic's lock.
func (n *Node) Status(ctx context.Context, limit int) (wire.Status, error) {
	st := wire.Status{NodeStatus: baton.NodeStatus{Node: n.cfg.Node, Addr: n.cfg.Addr, Store: n.cfg.Store,
		StartedAt: n.start, LeaseTTL: n.cfg.TTL}}
	topics, err := n.topicNames(ctx)
	if err != nil {
		return st, err
	}
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
	if n.peers != nil {
		st.Watching = n.peers.watching()
	}
	return st, nil
}

// topicNames is the store's topics in name order, as the node last listed
// them (discover: at start, on every new topic, and every max(TTL, 1s))
// with those admitted since (AdmitTopic): no store read. Before the first
// listing, it lists the store. The caller must not modify it.
func (n *Node) topicNames(ctx context.Context) ([]string, error) {
	if names, ok := n.topics.names(); ok {
		return names, nil
	}
	topics, err := n.store.Topics(ctx)
	if err != nil {
		return nil, err
	}
	topics = slices.Clone(topics)
	slices.Sort(topics)
	return topics, nil
}

// statusReaders bounds the topics TopicStatuses reads at once: a page's
// reads overlap (on Redis each is a round trip) without taking every
// connection of the store's pool from the publishers.
const statusReaders = 8

// TopicStatuses reads the status of each of topics as this node sees it,
// in the order given: three store reads per topic (its lock, cursor and
// queue), statusReaders topics at a time. A topic not in the store is
// reported empty.
func (n *Node) TopicStatuses(ctx context.Context, topics []string) ([]baton.TopicStatus, error) {
	active := n.Active()
	out := make([]baton.TopicStatus, len(topics))
	err := readEach(len(topics), func(i int) error {
		_, publishing := active[topics[i]]
		var err error
		out[i], err = n.topicStatus(ctx, topics[i], publishing)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readEach calls read(i) for i in [0, n), statusReaders at a time, and
// returns the error of the first i that failed.
func readEach(n int, read func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(statusReaders, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = read(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// topicStatus reads one topic's status (see TopicStatuses).
func (n *Node) topicStatus(ctx context.Context, topic string, publishing bool) (baton.TopicStatus, error) {
	ts := baton.TopicStatus{Topic: topic, Role: baton.RoleStandby, Terminals: n.cfg.Terminals(topic)}
	if publishing {
		ts.Role = baton.RoleActive
	}
	lock, err := n.store.Lock(ctx, topic)
	if err != nil {
		return ts, err
	}
	ts.Held, ts.Holder, ts.Epoch = lock.Held, lock.Lease.Holder, lock.Lease.Epoch
	if lock.Held {
		ts.ExpiresAt = lock.Lease.ExpiresAt
	}
	if ts.Cursor, err = n.store.Cursor(ctx, topic); err != nil {
		return ts, err
	}
	info, err := n.store.Topic(ctx, topic)
	if err != nil && !errors.Is(err, baton.ErrNotFound) {
		return ts, err
	}
	ts.FirstSeq, ts.LastSeq = info.FirstSeq, info.LastSeq
	if info.LastSeq > ts.Cursor.Seq {
		ts.QueueDepth = info.LastSeq - ts.Cursor.Seq
	}
	if n.cfg.Witness != nil {
		ts.Ledger = n.cfg.Witness.Status(topic)
	}
	ts.Stalled = n.health.progress(topic, publishing && ts.QueueDepth > 0, ts.Cursor.Seq, ts.QueueDepth,
		n.cfg.Clock.Now(), n.cfg.StallAfter)
	return ts, nil
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
