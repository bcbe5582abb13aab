package node

import (
	"context"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
)

// Leadership spread by load (docs/design.md, node leases): a node's load is
// the number of topic leases it holds, which every node reads for all nodes
// in one store call (NodeLeases). Two mechanisms keep it even:
//
//   - when a lease is free, loaded nodes wait before they race (raceDelay),
//     so the least loaded node takes it;
//   - a node above its share hands topics over gracefully (balance), a few
//     at a time, while some node is below its share: a node that joins or
//     comes back fills up within seconds, with no loss (a hand-over releases
//     after the publisher stopped, and the successor resumes at the cursor).

const (
	// balanceEvery is how often a node compares its load with the others'.
	balanceEvery = 500 * time.Millisecond
	// handoffPace is the most topics a node hands over per balance step:
	// hand-overs are paced, so that a joining node is not flooded and a
	// store is not hit by all of them at once. A node joining three that
	// hold 10,000 topics gets its 2,500 in two or three steps: a hand-off
	// costs a release and an acquire, each batched with the others by the
	// engines (redis/batch.go, sqlite/leasebatch.go).
	handoffPace = 500
	// maxRaceDelay bounds raceDelay.
	maxRaceDelay = 200 * time.Millisecond
)

// raceDelay is how long this node waits before racing for topic's free
// lease. A node more than a little above the least loaded live node waits
// 20 ms plus a millisecond per lease above it, up to maxRaceDelay. Among the
// others, the topic's rendezvous order (a hash of topic and node) decides:
// the first races at once, the next after rankDelay, and so on. So usually
// one node alone tries for a free lease (one store write, not one per node),
// and new or orphaned topics spread evenly over the least loaded nodes.
//
// Every load it compares comes from the same read of the node leases, this
// node's own included: after a crash every survivor takes its part of the
// orphans at once, and a live count of its own against a read of the
// others' (up to a TTL old) would soon make each look loaded to itself,
// and delay every survivor for the rest of the hand-over.
//
// A node racing for many free leases at once (a crash handed it its part
// of thousands) is slow to get to each, and so are the others: the later
// ranks wait longer, racePerBusy per race under way on this node (up to
// a TTL), so that the first in a topic's order gets to it before the next
// tries too. Otherwise, under such a burst, every survivor would race for
// nearly every orphan, and half of the attempts, with the reads that
// follow them, would be refused for nothing. Capped at TTL/2, a crash of
// the node holding 3,334 of 10,000 topics on SQLite let the second ranks
// race after a second while the first were still at it: a third more
// attempts in some runs, each of them slower, and the hand-over twice as
// long (docs/benchmarks.md, "Fewer statements per topic in a mass
// hand-over").
func (n *Node) raceDelay(topic, last string) time.Duration {
	n.mu.Lock()
	live, busy := len(n.active), n.racing
	n.mu.Unlock()
	d := raceDelayOf(topic, n.cfg.Node, last, n.session.Leases(), live, n.cfg.TTL)
	if d > 0 && d < maxRaceDelay {
		d += min(time.Duration(busy)*racePerBusy, n.cfg.TTL)
	}
	return d
}

// racePerBusy is how much later a node's later ranks race per race under
// way on the node (raceDelay). The races a standby counts when it waits
// are those begun before it: early in a wave they are few, and at half a
// millisecond each a crash of 3,334 topics on SQLite, where a survivor
// takes one in 0.4 to 1.5 ms, had a fifth to a third of its acquisitions
// refused (docs/benchmarks.md, "Fewer statements per topic in a mass
// hand-over").
const racePerBusy = 2 * time.Millisecond

// raceDelayOf is raceDelay for node, from the node leases ls and its live
// count of leases (used only while ls does not list node). last, the node
// that held the lease last, is not ranked: it let the lease go (it left,
// crashed or handed it off, and then does not race before its cooldown),
// though the read of the node leases, up to a TTL old, may still show it
// live; ranked, it would delay every other node by a rank for nothing.
//
// A loaded node waits longer, up to TTL/2, for a lease that another loaded
// node let go while alive (a balancing hand-off, meant for the least
// loaded): a joining node, busy with the hundreds it is handed at once,
// took only about two thirds of them within maxRaceDelay, and the rest
// went from one loaded node to another (docs/benchmarks.md, "A new topic's
// copy at first use").
func raceDelayOf(topic, node, last string, ls []baton.NodeLease, live int, ttl time.Duration) time.Duration {
	mine := -1
	for _, nl := range ls {
		if nl.Node == node {
			mine = nl.Leases
		}
	}
	if mine < 0 {
		mine = live
	}
	least := mine
	for _, nl := range ls {
		if nl.Remaining > 0 && nl.Node != node && nl.Node != last {
			least = min(least, nl.Leases)
		}
	}
	slack := max(2, least/8)
	if mine > least+slack {
		most := maxRaceDelay
		for _, nl := range ls {
			if nl.Node == last && nl.Remaining > 0 && nl.Leases > least+slack {
				most = max(most, ttl/2)
			}
		}
		return min(20*time.Millisecond+time.Duration(mine-least)*time.Millisecond, most)
	}
	own := rendezvous(topic, node)
	rank := 0
	for _, nl := range ls {
		if nl.Remaining > 0 && nl.Node != node && nl.Node != last && nl.Leases <= least+slack && rendezvous(topic, nl.Node) > own {
			rank++
		}
	}
	return time.Duration(rank) * rankDelay
}

// rankDelay is how long each node ahead in a topic's rendezvous order is
// given to take its free lease.
const rankDelay = 15 * time.Millisecond

// rendezvous is node's score for topic (highest random weight hashing).
func rendezvous(topic, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

// share is a node's fair share of total leases over nodes live nodes.
func share(total, nodes int) int { return (total + nodes - 1) / nodes }

// balance hands topics over while this node holds more than its share and
// another live node holds less, until ctx ends.
//
// Hand-overs settle before the next step: hand-offs still in flight
// (released, not yet taken) show in no read of the node leases, and a step
// sooner would see the joiner still short, hand it more and overshoot, and
// its excess would flow back. So a step waits until a fresh read counts a
// live holder for every topic this node knows (every topic it or another
// node handed over has been taken again), or a TTL after its last
// hand-over at most (some topics may have no holder for other reasons:
// every node at --max-leases, a topic deleted meanwhile). And while this
// node takes leases (a crash's orphans, a burst of new topics), the loads
// are in motion: balancing in the middle of a crash hand-over would move
// topics that are still being taken over, so a step also waits a TTL
// after this node last took one.
func (n *Node) balance(ctx context.Context) {
	t := time.NewTicker(balanceEvery)
	defer t.Stop()
	var handed time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		settle := max(n.cfg.TTL, balanceEvery)
		now := n.cfg.Clock.Now()
		if now.Sub(n.lastTaken()) < settle {
			continue
		}
		var fresh []baton.NodeLease
		if !handed.IsZero() && now.Sub(handed) < settle {
			ls, err := n.store.NodeLeases(ctx)
			if err != nil || !settled(ls, n.known()) {
				continue
			}
			fresh = ls
		}
		if k, _ := n.excess(n.session.Leases(), nil); k > 0 || fresh != nil {
			// The view may be a TTL old: confirm with a fresh one, and
			// leave out the nodes that take no more (draining, leaving or
			// at their --max-leases), which say so in their heartbeats.
			ls := fresh
			if ls == nil {
				var err error
				if ls, err = n.store.NodeLeases(ctx); err != nil {
					continue
				}
			}
			ms, err := n.store.Members(ctx)
			if err != nil {
				continue
			}
			closed := make(map[string]bool)
			for _, m := range ms {
				if m.State == baton.MemberLeaving || m.State == baton.MemberFull {
					closed[m.Node] = true
				}
			}
			handed = time.Time{}
			if n.handOver(n.plan(ls, closed)) > 0 {
				handed = n.cfg.Clock.Now()
			}
		}
	}
}

// known counts the topics this node has an elector for.
func (n *Node) known() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.electors)
}

// settled reports whether the live node leases of ls hold a lease for
// each of the known topics: no hand-off is in flight.
func settled(ls []baton.NodeLease, known int) bool {
	held := 0
	for _, nl := range ls {
		if nl.Remaining > 0 {
			held += nl.Leases
		}
	}
	return held >= known
}

// excess is how many topics this node should hand over now, from the node
// leases ls, leaving out the nodes in closed: its leases above its share,
// no more than its part of what the nodes below their share lack, and at
// most handoffPace; and the nodes below their share, which should take
// them.
func (n *Node) excess(ls []baton.NodeLease, closed map[string]bool) (int, map[string]bool) {
	n.mu.Lock()
	mine, draining := len(n.active), n.draining
	n.mu.Unlock()
	if draining {
		return mine, nil
	}
	total, nodes := mine, 1
	for _, nl := range ls {
		if nl.Node == n.cfg.Node || nl.Remaining <= 0 {
			continue
		}
		total += nl.Leases // a closed node's leases count, not its room
		if !closed[nl.Node] {
			nodes++
		}
	}
	s := share(total, nodes)
	if nodes < 2 || mine <= s {
		return 0, nil
	}
	// The room below the share, and the nodes above it that fill it: each
	// gives its part, so that together they do not overshoot.
	lack, donors := 0, 1
	takers := make(map[string]bool)
	for _, nl := range ls {
		if nl.Node == n.cfg.Node || nl.Remaining <= 0 || closed[nl.Node] {
			continue
		}
		if nl.Leases < s {
			lack += s - nl.Leases
			takers[nl.Node] = true
		} else if nl.Leases > s {
			donors++
		}
	}
	if lack == 0 {
		return 0, nil
	}
	return min(mine-s, max(1, lack/donors), handoffPace), takers
}

// plan is a balance step from the node leases ls, leaving out the nodes in
// closed: how many topics to hand over (excess), and which of them
// (firstRacer); a draining node hands over all, whoever takes them.
func (n *Node) plan(ls []baton.NodeLease, closed map[string]bool) (int, func(topic string) bool) {
	k, takers := n.excess(ls, closed)
	if takers == nil {
		return k, nil
	}
	return k, func(topic string) bool { return takers[firstRacer(topic, n.cfg.Node, ls, closed, n.cfg.TTL)] }
}

// firstRacer is the node that races first for topic's lease once node
// hands it over, by raceDelayOf from the node leases ls: the live nodes
// but node (which does not race before its cooldown) and those in closed
// (which take no more), the least delay first, ties in rendezvous order.
//
// A balance step hands over only topics whose first racer is a node below
// its share. Loads within raceDelayOf's slack of the least race in
// rendezvous order, so a topic handed over at random goes to whichever
// node comes first in its order, as likely one above its share as the one
// below it; and since a node hands over its idlest topics first, and a
// topic taken over has not committed on its new holder, the same topics
// went back and forth between two nodes above their share forever, while
// the one below it never got them (three nodes at 1,004, 992 and 1,004 of
// 3,000 topics handed 8 topics over every 2.5 s, each taking a new epoch,
// a checkpoint and every witness's rounds: docs/benchmarks.md, "Balance
// steps that settle"). With a handful of topics a node may hold none whose
// first racer is below its share, and then stays above it: a spread one
// off, where the old choice could move one topic back and forth forever.
func firstRacer(topic, node string, ls []baton.NodeLease, closed map[string]bool, ttl time.Duration) string {
	first, best, score := "", time.Duration(0), uint64(0)
	for _, nl := range ls {
		if nl.Node == node || nl.Remaining <= 0 || closed[nl.Node] {
			continue
		}
		d := raceDelayOf(topic, nl.Node, node, ls, nl.Leases, ttl)
		r := rendezvous(topic, nl.Node)
		if first == "" || d < best || d == best && r > score {
			first, best, score = nl.Node, d, r
		}
	}
	return first
}

// handOver hands k of this node's topics over, those that committed
// least recently first: a hand-over of an idle topic costs its terminals
// nothing, one of a busy topic a pause while the successor resumes. A
// balance step in the middle of a load (a node holding two busy topics of
// three) moved the busiest: a spurious hand-over in the bench's latency
// scenario (docs/benchmarks.md, "Medians of three runs beside the peers").
// If want is not nil, only the topics it wants are handed over
// (firstRacer).
func (n *Node) handOver(k int, want func(topic string) bool) int {
	if k <= 0 {
		return 0
	}
	cooldown := max(n.cfg.TTL, time.Second)
	n.mu.Lock()
	els := make(map[string]*elector.Elector, len(n.active))
	for topic := range n.active {
		if e := n.electors[topic]; e != nil {
			els[topic] = e
		}
	}
	n.mu.Unlock()
	handed := 0
	for _, topic := range n.handoffOrder(slices.Collect(maps.Keys(els)), want) {
		if handed == k {
			break
		}
		if els[topic].Handoff(cooldown) {
			handed++
		}
	}
	if handed > 0 {
		n.log.Info("handing topics over to less loaded nodes", "topics", handed)
	}
	return handed
}

// handoffOrder is the order in which handOver offers topics: those want
// wants (all if it is nil), idlest first.
func (n *Node) handoffOrder(topics []string, want func(topic string) bool) []string {
	if want != nil {
		topics = slices.DeleteFunc(topics, func(t string) bool { return !want(t) })
	}
	return n.commits.idlest(topics, len(topics))
}

// lastTaken is when this node last took a lease.
func (n *Node) lastTaken() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.taken
}

// Drain hands every topic of this node over and stops racing for more: the
// node keeps serving terminals and ingest. It is how an operator empties a
// node before stopping it (baton drain). Undrain ends it.
func (n *Node) Drain() {
	n.mu.Lock()
	n.draining = true
	k := len(n.active)
	n.mu.Unlock()
	n.log.Info("draining: handing every topic over", "topics", k)
	n.handOver(k, nil)
}

// Undrain lets a drained node race for topics again.
func (n *Node) Undrain() {
	n.mu.Lock()
	n.draining = false
	n.freed()
	n.mu.Unlock()
}

// Draining reports whether the node is drained.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// lastCommits is when each topic last committed on this node.
type lastCommits struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (l *lastCommits) note(topic string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = make(map[string]time.Time)
	}
	l.at[topic] = at
}

func (l *lastCommits) forget(topic string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.at, topic)
}

// idlest returns the k of topics that committed least recently (never
// first), in that order; ties in name order.
func (l *lastCommits) idlest(topics []string, k int) []string {
	l.mu.Lock()
	at := make(map[string]time.Time, len(topics))
	for _, t := range topics {
		at[t] = l.at[t]
	}
	l.mu.Unlock()
	slices.SortFunc(topics, func(a, b string) int {
		if c := at[a].Compare(at[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return topics[:min(k, len(topics))]
}
