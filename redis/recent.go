package redis

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/baton-pub/baton"
)

// Commits carried by their messages (baton.RecentPublished). A small commit's
// message on the topic's events channel carries its items,
//
//	commit <upto> <n> <JSON array of the n baton.Published>
//
// so that a node that does not hold the lease hands them to its terminals
// without reading them back (the hub's feed reads after every commit signal
// otherwise: one round trip per commit per node, queued behind everything
// else in a mass hand-over, docs/benchmarks.md "Commits carried to the other
// nodes"). A larger commit's message carries none ("commit <upto>"), and so
// does every commit while reads are confirmed by replicas (Options.
// WaitReplicas: the message goes out before the replicas acknowledge, and a
// node must not deliver what a failover could still lose, confirm.go).
//
// The store keeps, per topic, what the messages heard since the last doubt
// said: the newest commit's seq and the items of the commits heard in a row
// that carried them. Anything it cannot vouch for marks the topic unknown: a
// commit message without items, a re-anchor, a deletion, a commit made
// through this Store (its own message comes later), and a re-subscription
// (messages may have been lost: every topic). Pub/sub delivers one
// connection's messages in order, so once a commit's message is heard every
// earlier one was, or the connection was lost (and everything is unknown).

// Bounds of what is carried and kept.
const (
	// carryItems and carryBytes bound the items one commit message
	// carries: small commits are the low-latency case; a big one is read.
	carryItems = 16
	carryBytes = 16 << 10
	// recentItems bounds the items kept per topic, recentBytes those of
	// every topic together (past it, everything is forgotten: reads).
	recentItems = 256
	recentBytes = 8 << 20
)

// recentCommits is what the commit messages said, per topic.
type recentCommits struct {
	mu     sync.Mutex
	topics map[string]*recentTopic
	bytes  int
}

// recentTopic: the newest commit heard is upto; commits (possibly none)
// are the commits heard in a row that carried their items, up to upto, as
// they came (decoded at the first RecentPublished that needs them: a node
// with no terminal on the topic never pays for it). unknown: a change was
// heard that the store cannot vouch for.
type recentTopic struct {
	upto    uint64
	commits []carriedCommit
	items   int // of the commits
	bytes   int
	unknown bool
}

// carriedCommit is one commit message's items: seqs first..upto, as JSON
// until decoded.
type carriedCommit struct {
	first, upto uint64
	raw         string
	ps          []baton.Published
}

// carried encodes the items of commit c for its message, "<n> <JSON>", or
// "" when they are not to be carried.
func (s *Store) carried(c baton.Commit) string {
	if s.opts.WaitReplicas > 0 || len(c.Items) > carryItems {
		return ""
	}
	b, err := json.Marshal(c.Published())
	if err != nil || len(b) > carryBytes {
		return ""
	}
	return strconv.Itoa(len(c.Items)) + " " + string(b)
}

// heardCommit records the commit message "<upto>[ <n> <JSON>]" of topic.
func (r *recentCommits) heardCommit(topic, rest string) {
	seqText, carried, _ := strings.Cut(rest, " ")
	upto, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		r.unknown(topic) // "commit reanchor", or unreadable
		return
	}
	nText, js, _ := strings.Cut(carried, " ")
	n, err := strconv.ParseUint(nText, 10, 64)
	if err != nil || n == 0 || n > carryItems || n > upto || js == "" {
		r.unknown(topic)
		return
	}
	first := upto - n + 1
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topics == nil {
		r.topics = make(map[string]*recentTopic)
	}
	t := r.topics[topic]
	if t == nil {
		t = &recentTopic{}
		r.topics[topic] = t
	}
	if t.unknown || len(t.commits) == 0 || t.upto+1 != first || t.items+int(n) > recentItems {
		// Start again from this commit: what came before it is read if
		// asked for.
		r.bytes -= t.bytes
		t.commits, t.items, t.bytes, t.unknown = nil, 0, 0, false
	}
	t.commits = append(t.commits, carriedCommit{first: first, upto: upto, raw: js})
	t.items += int(n)
	t.bytes += len(js)
	t.upto = upto
	if r.bytes += len(js); r.bytes > recentBytes {
		// Over the budget (thousands of busy topics that no feed asks
		// about): forget it all; feeds read until the next messages.
		r.topics, r.bytes = nil, 0
	}
}

// unknown marks topic as not vouched for until its next commit message
// with items.
func (r *recentCommits) unknown(topic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unknownLocked(topic)
}

func (r *recentCommits) unknownLocked(topic string) {
	if t := r.topics[topic]; t != nil {
		r.bytes -= t.bytes
		t.commits, t.items, t.bytes, t.unknown = nil, 0, 0, true
	} else if r.topics != nil {
		r.topics[topic] = &recentTopic{unknown: true}
	}
}

// reset forgets every topic: messages may have been lost.
func (r *recentCommits) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.topics, r.bytes = nil, 0
}

// RecentPublished implements baton.RecentPublished.
func (s *Store) RecentPublished(topic string, after uint64, limit int) ([]baton.Published, bool) {
	r := &s.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.topics[topic]
	switch {
	case t == nil || t.unknown || limit <= 0:
		return nil, false
	case after == t.upto:
		return nil, true // nothing committed since, as far as was heard
	case len(t.commits) == 0 || after+1 < t.commits[0].first || after > t.upto:
		return nil, false
	}
	var out []baton.Published
	for i := range t.commits {
		c := &t.commits[i]
		if c.upto <= after {
			continue
		}
		if c.ps == nil && !c.decode(topic) {
			r.unknownLocked(topic)
			return nil, false
		}
		for _, p := range c.ps {
			if p.Seq > after && len(out) < limit {
				out = append(out, p)
			}
		}
		if len(out) >= limit {
			break
		}
	}
	return out, true
}

// decode decodes the commit's items, and reports whether they are the
// seqs first..upto, in order.
func (c *carriedCommit) decode(topic string) bool {
	var ps []baton.Published
	if json.Unmarshal([]byte(c.raw), &ps) != nil || uint64(len(ps)) != c.upto-c.first+1 {
		return false
	}
	for i := range ps {
		if ps[i].Seq != c.first+uint64(i) {
			return false
		}
		ps[i].Topic = topic
	}
	c.ps, c.raw = ps, ""
	return true
}
