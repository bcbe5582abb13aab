// Package nemesis draws a chaos run's faults from a seed: what happens,
// when, to which topic's publisher, node or terminal, and for how long. The
// same seed and configuration give the same schedule, so that a run that
// found an anomaly can be replayed. Which process a fault hits is decided
// when it is injected (the active publisher of a topic is whoever holds the
// lock then); the schedule names the roles, the run's timeline names the
// processes.
package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/baton-pub/baton"
)

// Kind is a kind of fault.
type Kind string

// The faults. "Publisher" is the active publisher of the fault's topic,
// found when it is injected (GET /v1/topics/{t}/lock).
const (
	// KillPublisher: SIGKILL the publisher; restart it after Hold.
	KillPublisher Kind = "kill-publisher"
	// PausePublisher: SIGSTOP the publisher for Hold (past its lease TTL)
	// and SIGCONT it: a zombie that must find itself fenced.
	PausePublisher Kind = "pause-publisher"
	// HiccupPublisher: SIGSTOP the publisher for Hold, from 0.3 to 1.2
	// TTL, and SIGCONT it: a pause around the lease's expiry, where a
	// node may resume just as its lease lapses or just before.
	HiccupPublisher Kind = "hiccup-publisher"
	// TermPublisher: SIGTERM the publisher (graceful hand-over); restart
	// it after Hold.
	TermPublisher Kind = "term-publisher"
	// RestartStandby: SIGKILL a node that does not publish the topic and
	// start it again after Hold.
	RestartStandby Kind = "restart-standby"
	// Partition: cut a node (the publisher, or Node if Node >= 0) off the
	// store for Hold, then heal. Redis only: an SQLite file on one machine
	// cannot be partitioned from the processes that open it.
	Partition Kind = "partition"
	// RestartStore: SIGKILL the store's redis-server and start it again
	// on the same append-only file after Hold. Own Redis only.
	RestartStore Kind = "restart-store"
	// SlowTerminal: a terminal reads one item per SlowRead for Hold; the
	// server disconnects it and it resumes.
	SlowTerminal Kind = "slow-terminal"
	// MoveTerminal: a terminal disconnects and resumes on another node
	// (Node is the offset from its current one) from its last seq.
	MoveTerminal Kind = "move-terminal"
	// Join: start one more node for Hold, then stop it with SIGTERM (a
	// graceful leave). The others hand it topics by balancing (graceful
	// hand-overs, docs/design.md "Node leases"); on leaving it hands them
	// back. One joined node at a time.
	Join Kind = "join"
	// Drain: drain node Node (POST /v1/drain: it hands every topic over
	// and takes none), keep it drained for Hold, then undrain it (DELETE
	// /v1/drain) so that balancing hands it topics again.
	Drain Kind = "drain"
)

// AllKinds lists every kind, in the order of reports.
var AllKinds = []Kind{KillPublisher, PausePublisher, HiccupPublisher, TermPublisher, RestartStandby, Partition, RestartStore, SlowTerminal, MoveTerminal,
	Join, Drain}

// DefaultWeights is how often each kind is drawn, relative to the others.
var DefaultWeights = map[Kind]int{
	KillPublisher: 4, PausePublisher: 3, HiccupPublisher: 2, TermPublisher: 3, RestartStandby: 2,
	Partition: 3, RestartStore: 1, SlowTerminal: 1, MoveTerminal: 3, Join: 1, Drain: 2,
}

// ProcessFault reports whether k signals or cuts a node (as opposed to the
// store or a terminal).
func (k Kind) ProcessFault() bool {
	switch k {
	case KillPublisher, PausePublisher, HiccupPublisher, TermPublisher, RestartStandby, Partition, Join, Drain:
		return true
	}
	return false
}

// SlowRead is how long a slow terminal takes per item during its fault.
const SlowRead = 250 * time.Millisecond

// Config is what a schedule is drawn from.
type Config struct {
	Seed uint64
	// Duration is the length of the run; faults start before it ends.
	Duration time.Duration
	// Interval is the mean gap between fault starts; each gap is drawn
	// from [Interval/2, 3*Interval/2].
	Interval time.Duration
	// TTL is the nodes' lease TTL: pauses and partitions outlast it.
	TTL time.Duration
	// Nodes, Topics, Terminals size the targets.
	Nodes, Topics, Terminals int
	// Kinds are the faults this run may inject (see AllKinds).
	Kinds []Kind
	// Weights override DefaultWeights.
	Weights map[Kind]int
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Duration <= 0:
		return baton.Invalidf("duration", "must be positive")
	case c.Interval < 10*time.Millisecond:
		return baton.Invalidf("interval", "%v is below 10ms", c.Interval)
	case c.TTL <= 0:
		return baton.Invalidf("ttl", "must be positive")
	case c.Nodes < 1 || c.Topics < 1 || c.Terminals < 1:
		return baton.Invalidf("nodes", "nodes, topics and terminals must be positive")
	case len(c.Kinds) == 0:
		return baton.Invalidf("kinds", "no fault kind enabled")
	}
	for _, k := range c.Kinds {
		if !slices.Contains(AllKinds, k) {
			return baton.Invalidf("kinds", "unknown fault %q", k)
		}
	}
	return nil
}

// Fault is one scheduled fault.
type Fault struct {
	// N numbers the faults from 1 in schedule order.
	N  int           `json:"n"`
	At time.Duration `json:"at_ns"`
	// Kind says what to do; Topic, Node and Terminal say to whom (see the
	// kinds); Hold how long the fault lasts.
	Kind     Kind          `json:"kind"`
	Topic    int           `json:"topic"`
	Node     int           `json:"node"`
	Terminal int           `json:"terminal"`
	Hold     time.Duration `json:"hold_ns"`
}

func (f Fault) String() string {
	target := ""
	switch f.Kind {
	case KillPublisher, PausePublisher, HiccupPublisher, TermPublisher:
		target = fmt.Sprintf("publisher of topic %d", f.Topic)
	case RestartStandby:
		target = fmt.Sprintf("standby #%d of topic %d", f.Node, f.Topic)
	case Partition:
		if f.Node < 0 {
			target = fmt.Sprintf("publisher of topic %d", f.Topic)
		} else {
			target = fmt.Sprintf("node #%d", f.Node)
		}
	case RestartStore:
		target = "the store"
	case SlowTerminal:
		target = fmt.Sprintf("terminal #%d", f.Terminal)
	case MoveTerminal:
		target = fmt.Sprintf("terminal #%d to node +%d", f.Terminal, f.Node)
	case Join:
		target = "one more node"
	case Drain:
		target = fmt.Sprintf("node #%d", f.Node)
	}
	return fmt.Sprintf("#%d at %.3fs: %s %s for %v", f.N, f.At.Seconds(), f.Kind, target, f.Hold.Round(time.Millisecond))
}

// Plan draws the schedule. It depends on nothing but c: the same c gives
// the same faults.
func Plan(c Config) ([]Fault, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// A stream of its own (the second PCG word), so that other uses of
	// the seed do not shift the schedule.
	rng := rand.New(rand.NewPCG(c.Seed, 0x6e656d65736973)) // "nemesis"
	weights := c.Weights
	if weights == nil {
		weights = DefaultWeights
	}
	kinds := make([]Kind, 0, len(c.Kinds))
	total := 0
	for _, k := range AllKinds { // fixed order, whatever the order of c.Kinds
		if slices.Contains(c.Kinds, k) && weights[k] > 0 {
			kinds = append(kinds, k)
			total += weights[k]
		}
	}
	if total == 0 {
		return nil, baton.Invalidf("kinds", "every enabled fault has weight 0")
	}
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	var out []Fault
	// The first fault comes after one interval: the workload warms up.
	at := c.Interval
	for n := 1; at < c.Duration && n <= 1_000_000; n++ {
		w := rng.IntN(total)
		var k Kind
		for _, k = range kinds {
			if w < weights[k] {
				break
			}
			w -= weights[k]
		}
		f := Fault{N: n, At: at, Kind: k, Topic: rng.IntN(c.Topics), Node: rng.IntN(c.Nodes),
			Terminal: rng.IntN(c.Terminals)}
		switch k {
		case KillPublisher:
			f.Hold = between(100*time.Millisecond, 2*c.TTL)
		case PausePublisher, Partition:
			f.Hold = between(c.TTL*3/2, 3*c.TTL)
		case HiccupPublisher:
			f.Hold = between(c.TTL*3/10, c.TTL*6/5)
		case TermPublisher:
			f.Hold = between(100*time.Millisecond, c.TTL)
		case RestartStandby:
			f.Hold = between(0, c.TTL)
		case RestartStore:
			f.Hold = between(0, 500*time.Millisecond)
		case SlowTerminal:
			// Longer than the server's 10 s write timeout, so that it is
			// the server that gives up on the terminal.
			f.Hold = between(12*time.Second, 16*time.Second)
		case MoveTerminal:
			f.Node = 1 + rng.IntN(max(c.Nodes-1, 1))
		case Join:
			// Long enough for balancing to hand the new node its share.
			f.Hold = between(5*time.Second, 15*time.Second)
		case Drain:
			f.Hold = between(c.TTL, 4*c.TTL)
		}
		if k == Partition && rng.IntN(3) != 0 {
			f.Node = -1 // mostly the publisher, whose lease must move; else any node
		}
		out = append(out, f)
		at += between(c.Interval/2, c.Interval*3/2)
	}
	return out, nil
}

// Counts tallies faults by kind.
func Counts(fs []Fault) map[Kind]int {
	m := make(map[Kind]int)
	for _, f := range fs {
		m[f.Kind]++
	}
	return m
}
