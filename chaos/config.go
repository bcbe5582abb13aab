// Package chaos is the fault-injection harness behind `baton chaos`: it
// starts real `baton serve` processes on a store, sources and terminals,
// and a nemesis that kills, pauses, stops and restarts servers, cuts them
// off the store, restarts the store and slows terminals down, on a
// schedule drawn from a seed. At the end an independent checker
// (package checker) judges what the sources were told and what the
// terminals received, and `baton ledger verify` audits each topic's
// ledger. Run is the whole of it; Report is its verdict.
package chaos

import (
	"strings"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/nemesis"
)

// Config is one chaos run. Validate names a bad field by its flag.
type Config struct {
	// Store is sqlite (a fresh temporary file), sqlite://PATH, redis (a
	// redis-server of our own, which may be restarted as a fault) or
	// redis://HOST:PORT/DB (an existing one, reached through a proxy per
	// node so that nodes can be cut off).
	Store     string
	Nodes     int
	Duration  time.Duration
	Seed      uint64
	Topics    int
	Sources   int
	Terminals int
	Rate      int
	MaxBatch  int
	Resend    float64
	Interval  time.Duration
	LeaseTTL  time.Duration
	// Retain, if positive, is the servers' --retain: published items kept
	// per topic. A small one makes terminals that fall behind get resets.
	Retain uint64
	// Faults are the kinds to inject: "all", or some of KindList.
	Faults []string
	// Keep keeps the run's directory (logs, store) even when it passes.
	Keep bool
	// Sabotage records one delivery that no source sent, after a gap:
	// the checker must fail the run (tests of the harness itself).
	Sabotage bool
	// Drain bounds the wait, after the run, for terminals to receive
	// every acknowledged item.
	Drain time.Duration
	// Exe is the baton binary run as `serve` and `ledger verify`; ""
	// means this executable.
	Exe string
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Nodes < 2 || c.Nodes > 9:
		return baton.Invalidf("--nodes", "%d out of range [2, 9]", c.Nodes)
	case c.Duration < time.Second || c.Duration > 24*time.Hour:
		return baton.Invalidf("--duration", "%v out of range [1s, 24h]", c.Duration)
	case c.Topics < 1 || c.Topics > 100:
		return baton.Invalidf("--topics", "%d out of range [1, 100]", c.Topics)
	case c.Sources < 1 || c.Sources > 20:
		return baton.Invalidf("--sources", "%d out of range [1, 20]", c.Sources)
	case c.Terminals < 1 || c.Terminals > 50:
		return baton.Invalidf("--terminals", "%d out of range [1, 50]", c.Terminals)
	case c.Rate < 1 || c.Rate > 1000:
		return baton.Invalidf("--rate", "%d out of range [1, 1000]", c.Rate)
	case c.MaxBatch < 1 || c.MaxBatch > 100:
		return baton.Invalidf("--max-batch", "%d out of range [1, 100]", c.MaxBatch)
	case c.Resend < 0 || c.Resend > 1:
		return baton.Invalidf("--resend", "%v out of range [0, 1]", c.Resend)
	case c.Interval < 50*time.Millisecond:
		return baton.Invalidf("--interval", "%v is below 50ms", c.Interval)
	case c.LeaseTTL < 100*time.Millisecond || c.LeaseTTL > time.Minute:
		return baton.Invalidf("--lease-ttl", "%v out of range [100ms, 1m]", c.LeaseTTL)
	case c.Drain < time.Second:
		return baton.Invalidf("--drain", "%v is below 1s", c.Drain)
	}
	for _, f := range c.Faults {
		if f == "all" {
			continue
		}
		ok := false
		for _, k := range nemesis.AllKinds {
			ok = ok || string(k) == f
		}
		if !ok {
			return baton.Invalidf("--faults", "unknown fault %q (want all or some of %s)", f, KindList())
		}
	}
	return nil
}

// KindList names every kind of fault, comma-separated.
func KindList() string {
	s := make([]string, len(nemesis.AllKinds))
	for i, k := range nemesis.AllKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
