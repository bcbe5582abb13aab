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
	"fmt"
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
	Store    string
	Nodes    int
	Duration time.Duration
	Seed     uint64
	// Topics is the number of topics. Up to ManyTopics, Sources and
	// Terminals are per topic; above, they are totals spread over the
	// topics (Many): each source publishes to every topic, each terminal
	// follows one topic drawn from the seed, and every topic is audited
	// through the API at the end.
	Topics    int
	Sources   int
	Terminals int
	// Rate is requests per second per source: Sources x Rate (per topic,
	// or in all) is bounded by MaxRequestRate.
	Rate     int
	MaxBatch int
	Resend   float64
	Interval time.Duration
	LeaseTTL time.Duration
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

// The bounds of the workload's size.
const (
	// ManyTopics is the most topics with sources and terminals per topic;
	// above it they are totals (Config.Many).
	ManyTopics = 100
	// MaxTopics bounds --topics: every one is audited at the end.
	MaxTopics = 10_000
	// MaxRequestRate bounds the requests per second of all sources
	// together, whatever the number of topics: the servers share the
	// machine with the harness.
	MaxRequestRate = 5000
)

// Many reports whether Sources and Terminals are totals spread over the
// topics rather than per topic.
func (c *Config) Many() bool { return c.Topics > ManyTopics }

// TotalSources is the number of sources of the run.
func (c *Config) TotalSources() int {
	if c.Many() {
		return c.Sources
	}
	return c.Topics * c.Sources
}

// TotalTerminals is the number of terminals of the run.
func (c *Config) TotalTerminals() int {
	if c.Many() {
		return c.Terminals
	}
	return c.Topics * c.Terminals
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	maxSources, maxTerminals, per := 20, 50, " per topic"
	if c.Many() {
		maxSources, maxTerminals, per = 200, 500, fmt.Sprintf(" in all (with more than %d topics)", ManyTopics)
	}
	switch {
	case c.Nodes < 2 || c.Nodes > 9:
		return baton.Invalidf("--nodes", "%d out of range [2, 9]", c.Nodes)
	case c.Duration < time.Second || c.Duration > 24*time.Hour:
		return baton.Invalidf("--duration", "%v out of range [1s, 24h]", c.Duration)
	case c.Topics < 1 || c.Topics > MaxTopics:
		return baton.Invalidf("--topics", "%d out of range [1, %d]", c.Topics, MaxTopics)
	case c.Sources < 1 || c.Sources > maxSources:
		return baton.Invalidf("--sources", "%d out of range [1, %d]%s", c.Sources, maxSources, per)
	case c.Terminals < 1 || c.Terminals > maxTerminals:
		return baton.Invalidf("--terminals", "%d out of range [1, %d]%s", c.Terminals, maxTerminals, per)
	case c.Rate < 1 || c.Rate > 1000:
		return baton.Invalidf("--rate", "%d out of range [1, 1000]", c.Rate)
	case c.TotalSources()*c.Rate > MaxRequestRate:
		return baton.Invalidf("--rate", "%d sources x %d requests/s is above %d requests/s in all", c.TotalSources(), c.Rate, MaxRequestRate)
	case c.Many() && float64(c.Sources*c.Rate)*c.Duration.Seconds() < 2*float64(c.Topics):
		// Each source goes round every topic before it draws them at
		// random: the run must be long enough for each topic to get an
		// item, with room for faults.
		return baton.Invalidf("--duration", "%v at %d sources x %d requests/s is %d requests, fewer than 2 per topic of %d: raise --duration, --sources or --rate",
			c.Duration, c.Sources, c.Rate, int(float64(c.Sources*c.Rate)*c.Duration.Seconds()), c.Topics)
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
