package nemesis_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/nemesis"
)

func config(seed uint64) nemesis.Config {
	return nemesis.Config{Seed: seed, Duration: 5 * time.Minute, Interval: time.Second, TTL: time.Second,
		Nodes: 3, Topics: 3, Terminals: 9, Kinds: nemesis.AllKinds}
}

// TestSameSeedSameSchedule: a schedule depends on its config alone.
func TestSameSeedSameSchedule(t *testing.T) {
	a, err := nemesis.Plan(config(42))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := nemesis.Plan(config(42))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans of seed 42 differ")
	}
	c, _ := nemesis.Plan(config(43))
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 42 and 43 gave the same plan")
	}
	// The order of the kinds given does not matter.
	cfg := config(42)
	cfg.Kinds = []nemesis.Kind{nemesis.MoveTerminal, nemesis.SlowTerminal, nemesis.RestartStore, nemesis.Partition,
		nemesis.RestartStandby, nemesis.TermPublisher, nemesis.HiccupPublisher, nemesis.PausePublisher, nemesis.KillPublisher, nemesis.Drain, nemesis.Join}
	d, _ := nemesis.Plan(cfg)
	if !reflect.DeepEqual(a, d) {
		t.Fatal("the order of Kinds changed the plan")
	}
}

// TestScheduleShape: faults are numbered, in time order, within the run,
// spaced as configured, of enabled kinds only, with holds that outlast the
// TTL where the fault needs it.
func TestScheduleShape(t *testing.T) {
	cfg := config(7)
	cfg.Kinds = []nemesis.Kind{nemesis.KillPublisher, nemesis.PausePublisher, nemesis.HiccupPublisher, nemesis.TermPublisher,
		nemesis.RestartStandby, nemesis.SlowTerminal, nemesis.MoveTerminal, nemesis.Join, nemesis.Drain} // SQLite: no partition, no store restart
	fs, err := nemesis.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) < 200 || len(fs) > 600 {
		t.Fatalf("%d faults in 5 minutes at a 1s interval", len(fs))
	}
	var prev time.Duration
	for i, f := range fs {
		if f.N != i+1 {
			t.Fatalf("fault %d numbered %d", i+1, f.N)
		}
		if f.At >= cfg.Duration || f.At < cfg.Interval {
			t.Fatalf("%v outside the run", f)
		}
		if i > 0 && (f.At-prev < cfg.Interval/2 || f.At-prev > cfg.Interval*3/2) {
			t.Fatalf("%v: gap %v", f, f.At-prev)
		}
		prev = f.At
		if f.Kind == nemesis.Partition || f.Kind == nemesis.RestartStore {
			t.Fatalf("%v: kind not enabled", f)
		}
		if f.Kind == nemesis.PausePublisher && f.Hold <= cfg.TTL {
			t.Fatalf("%v: a pause must outlast the TTL", f)
		}
		if f.Kind == nemesis.HiccupPublisher && (f.Hold < cfg.TTL*3/10 || f.Hold > cfg.TTL*6/5) {
			t.Fatalf("%v: a hiccup ends around the TTL", f)
		}
		if f.Kind == nemesis.Drain && (f.Hold < cfg.TTL || f.Node < 0 || f.Node >= cfg.Nodes) {
			t.Fatalf("%v: a drain lasts at least a TTL, on one of the nodes", f)
		}
		if f.Kind == nemesis.Join && f.Hold < 5*time.Second {
			t.Fatalf("%v: a joined node stays long enough to be handed topics", f)
		}
		if f.Topic < 0 || f.Topic >= cfg.Topics || f.Terminal < 0 || f.Terminal >= cfg.Terminals {
			t.Fatalf("%v: target out of range", f)
		}
	}
	counts := nemesis.Counts(fs)
	for _, k := range cfg.Kinds {
		if counts[k] == 0 {
			t.Errorf("no %s in %d faults", k, len(fs))
		}
	}
}

func TestValidate(t *testing.T) {
	cfg := config(1)
	cfg.Kinds = []nemesis.Kind{"meteor"}
	if _, err := nemesis.Plan(cfg); err == nil {
		t.Fatal("unknown kind accepted")
	}
	cfg = config(1)
	cfg.Interval = 0
	if _, err := nemesis.Plan(cfg); err == nil {
		t.Fatal("zero interval accepted")
	}
}
