package chaos

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/baton-pub/baton/internal/netproxy"
	"github.com/baton-pub/baton/internal/proc"
)

func defaultConfig() Config {
	return Config{Nodes: 3, Duration: time.Minute, Topics: 3, Sources: 2, Terminals: 3, Rate: 20, MaxBatch: 3,
		Resend: 0.05, Interval: time.Second, LeaseTTL: time.Second, Faults: []string{"all"}, Drain: time.Minute, Seed: 9}
}

func TestChaosValidate(t *testing.T) {
	c := defaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		mut   func(*Config)
	}{
		{"--nodes", func(c *Config) { c.Nodes = 1 }},
		{"--duration", func(c *Config) { c.Duration = 0 }},
		{"--resend", func(c *Config) { c.Resend = 2 }},
		{"--lease-ttl", func(c *Config) { c.LeaseTTL = time.Millisecond }},
		{"--faults", func(c *Config) { c.Faults = []string{"meteor"} }},
		{"--topics", func(c *Config) { c.Topics = 0 }},
		{"--topics", func(c *Config) { c.Topics = MaxTopics + 1 }},
		// Up to ManyTopics, sources and terminals are per topic.
		{"--sources", func(c *Config) { c.Topics, c.Sources = ManyTopics, 21 }},
		{"--terminals", func(c *Config) { c.Topics, c.Terminals = ManyTopics, 51 }},
		// Above, they are totals, with bounds of their own.
		{"--sources", func(c *Config) { c.Topics, c.Sources, c.Duration = 1000, 201, time.Hour }},
		{"--terminals", func(c *Config) { c.Topics, c.Terminals = 1000, 501 }},
		// The request rate is bounded in all, whatever the topics.
		{"--rate", func(c *Config) { c.Topics, c.Sources, c.Rate = ManyTopics, 20, 3 }},
		{"--rate", func(c *Config) { c.Topics, c.Sources, c.Rate = 1000, 100, 51 }},
		// Too short a run to give every topic an item.
		{"--duration", func(c *Config) { c.Topics, c.Sources, c.Rate, c.Duration = MaxTopics, 10, 20, 30*time.Second }},
	} {
		c := defaultConfig()
		tc.mut(&c)
		err := c.Validate()
		var ie *baton.InvalidError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	// Many topics: the sources and terminals of a run are the totals
	// given, not per topic.
	c = defaultConfig()
	c.Topics, c.Sources, c.Terminals, c.Rate, c.Duration = MaxTopics, 100, 500, 50, 5*time.Minute
	if err := c.Validate(); err != nil || c.TotalSources() != 100 || c.TotalTerminals() != 500 {
		t.Fatalf("%d topics: %v, %d sources, %d terminals", c.Topics, err, c.TotalSources(), c.TotalTerminals())
	}
	c.Topics = ManyTopics
	c.Sources, c.Terminals, c.Rate = 2, 3, 20
	if err := c.Validate(); err != nil || c.TotalSources() != 2*ManyTopics || c.TotalTerminals() != 3*ManyTopics {
		t.Fatalf("%d topics: %v, %d sources, %d terminals", c.Topics, err, c.TotalSources(), c.TotalTerminals())
	}
}

// TestChaosKinds: the faults a run may inject depend on the store: no
// partition without a proxy (SQLite), no store restart without our own
// Redis.
func TestChaosKinds(t *testing.T) {
	r := &run{c: defaultConfig()}
	got := r.kinds()
	if slices.Contains(got, nemesis.Partition) || slices.Contains(got, nemesis.RestartStore) || len(got) != len(nemesis.AllKinds)-2 {
		t.Fatalf("SQLite kinds: %v", got)
	}
	p, err := netproxy.Listen("127.0.0.1:0", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r.proxies = []*netproxy.Proxy{p}
	if got := r.kinds(); !slices.Contains(got, nemesis.Partition) || slices.Contains(got, nemesis.RestartStore) {
		t.Fatalf("existing Redis kinds: %v", got)
	}
	r.redis = &proc.Redis{}
	if got := r.kinds(); len(got) != len(nemesis.AllKinds) {
		t.Fatalf("own Redis kinds: %v", got)
	}
	r.c.Faults = []string{"kill-publisher", "partition"}
	if got := r.kinds(); !slices.Equal(got, []nemesis.Kind{nemesis.KillPublisher, nemesis.Partition}) {
		t.Fatalf("chosen kinds: %v", got)
	}
}

// TestChaosReplay: the replay line names the seed and every flag that
// shapes the schedule and the workload, and hides a password.
func TestChaosReplay(t *testing.T) {
	c := defaultConfig()
	c.Store = "redis://:secret@127.0.0.1:6379/0"
	c.Faults = []string{"partition"}
	c.Retain = 500
	got := (&run{c: c}).replay()
	for _, want := range []string{"--seed 9", "--duration 1m0s", "--interval 1s", "--lease-ttl 1s", "--topics 3", "--faults partition", "--retain 500"} {
		if !strings.Contains(got, want) {
			t.Errorf("replay %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "secret") {
		t.Errorf("replay %q shows the password", got)
	}
	c.Store = "redis" // our own: no URL to redact
	if got := (&run{c: c}).replay(); !strings.Contains(got, "--store redis ") {
		t.Errorf("replay %q does not name the store", got)
	}
}

// TestChaosClaim: a node is hit by one fault at a time, and one of the
// nodes started first is always left alone; a joined node does not count
// towards that, so it may be hit while two of three are.
func TestChaosClaim(t *testing.T) {
	r := &run{impaired: make(map[string]string)}
	for _, name := range []string{"n1", "n2", "n3"} {
		r.nodes = append(r.nodes, &proc.Node{Name: name})
	}
	r.joined = []*proc.Node{{Name: "n4"}}
	f := nemesis.Fault{N: 1, Kind: nemesis.KillPublisher}
	if !r.claim("n1", true, f) || r.claim("n1", true, f) {
		t.Fatal("n1: claimed once, and only once")
	}
	if !r.claim("n2", true, f) {
		t.Fatal("n2: two of three may be impaired")
	}
	if r.claim("n3", true, f) {
		t.Fatal("n3: the last healthy node was claimed")
	}
	if !r.claim("n4", true, f) {
		t.Fatal("n4: a joined node is not one of the nodes to leave alone")
	}
	r.release("n1")
	if !r.claim("n3", true, f) {
		t.Fatal("n3: n1 was released")
	}
}
