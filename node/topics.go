package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// DefaultMaxTopics is `baton serve --max-topics`'s default: every topic
// costs every node an elector and a lease race (see docs/design.md, scale),
// so a node stops anyone creating them without limit.
const DefaultMaxTopics = 10000

// topicRefresh is how often, at most, AdmitTopic lists the store's topics
// when a new topic is asked for at the cap: a refusal costs a lookup in
// memory, not a listing of every topic.
const topicRefresh = time.Second

// topicCap holds the topics a node knows to exist, for Config.MaxTopics:
// the store's list as discover last read it, plus the new topics admitted
// since. A topic admitted but never created is forgotten at the next
// listing. The cap is checked against this view, so topics created at the
// same moment through several requests or nodes may pass it by as many.
type topicCap struct {
	max int
	mu  sync.Mutex
	// known is nil until the store's topics were listed once.
	known      map[string]struct{}
	listedAt   time.Time
	listedOnce bool
	// sorted is known in name order, for Status; nil when stale.
	sorted []string
}

// set replaces the known topics with the store's list.
func (c *topicCap) set(topics []string, at time.Time) {
	known := make(map[string]struct{}, len(topics))
	for _, t := range topics {
		known[t] = struct{}{}
	}
	c.mu.Lock()
	c.known, c.listedAt, c.listedOnce, c.sorted = known, at, true, nil
	c.mu.Unlock()
}

// names returns the known topics in name order (the caller must not
// modify it), and false if the store's topics were never listed.
func (c *topicCap) names() ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listedOnce {
		return nil, false
	}
	if c.sorted == nil {
		c.sorted = make([]string, 0, len(c.known))
		for t := range c.known {
			c.sorted = append(c.sorted, t)
		}
		slices.Sort(c.sorted)
	}
	return c.sorted, true
}

// admit admits topic if it is known, or new and under the cap (then it is
// known from now on). stale reports that it was refused on a view older
// than topicRefresh, or never listed, and should be listed again.
func (c *topicCap) admit(topic string, now time.Time) (ok, stale bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listedOnce {
		return false, true
	}
	if _, ok := c.known[topic]; ok {
		return true, false
	}
	if len(c.known) < c.max {
		c.known[topic] = struct{}{}
		c.sorted = nil
		return true, false
	}
	return false, now.Sub(c.listedAt) >= topicRefresh
}

// AdmitTopic says whether an append to topic may go on under
// Config.MaxTopics: one to a topic that exists always may; one that would
// create a topic may while the store holds fewer than MaxTopics topics. A
// refusal is a forbidden *wire.Error (403). The HTTP API asks it before
// every append, after the caller's right to publish to topic was checked.
func (n *Node) AdmitTopic(ctx context.Context, topic string) error {
	if n.topics.max == 0 {
		return nil
	}
	ok, stale := n.topics.admit(topic, n.cfg.Clock.Now())
	if !ok && stale {
		// Created through another node since the last listing, perhaps.
		topics, err := n.store.Topics(ctx)
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		n.topics.set(topics, n.cfg.Clock.Now())
		ok, _ = n.topics.admit(topic, n.cfg.Clock.Now())
	}
	if !ok {
		return wire.Errorf(baton.CodeForbidden, "topic %s does not exist and this node holds its most topics, %d (--max-topics)", topic, n.topics.max)
	}
	return nil
}
