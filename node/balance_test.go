package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/node"
)

// spread appends one item to each of n topics and waits until every one is
// published.
func spread(t *testing.T, st baton.Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("t%03d", i)
		if _, err := st.Append(ctx, topics[i], []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
	}
	poll.True(t, 20*time.Second, "every topic published", func() bool {
		for _, topic := range topics {
			if c, _ := st.Cursor(ctx, topic); c.Seq != 1 {
				return false
			}
		}
		return true
	})
	return topics
}

// loads returns how many leases each node holds.
func loads(ns ...*node.Node) []int {
	out := make([]int, len(ns))
	for i, n := range ns {
		out[i] = len(n.Active())
	}
	return out
}

func balanced(ls []int, total int) bool {
	lo, hi, sum := ls[0], ls[0], 0
	for _, l := range ls {
		lo, hi, sum = min(lo, l), max(hi, l), sum+l
	}
	return sum == total && lo > 0 && float64(hi) <= 1.25*float64(lo)
}

// TestJoinerGetsItsShare: a node that joins three loaded nodes is handed
// topics until every node holds about as many (max/min <= 1.25), and
// every topic keeps exactly one publisher meanwhile.
func TestJoinerGetsItsShare(t *testing.T) {
	st := memstore.New(nil)
	const total = 120
	a := start(t, st.Handle(), "a")
	topics := spread(t, st, total)
	b, c := start(t, st.Handle(), "b"), start(t, st.Handle(), "c")
	poll.True(t, 20*time.Second, "three nodes balanced", func() bool { return balanced(loads(a, b, c), total) })
	d := start(t, st.Handle(), "d")
	poll.True(t, 20*time.Second, "the joiner given its share", func() bool { return balanced(loads(a, b, c, d), total) })
	ctx := context.Background()
	// Balanced is not settled: a node above its share may still hand a
	// topic to one below it, and a topic between two holders is held by
	// neither for a moment. Every topic is held again once its hand-off
	// lands, and then active on its holder's node alone.
	nodes := map[string]*node.Node{"a": a, "b": b, "c": c, "d": d}
	poll.Until(t, 20*time.Second, "every topic held, and active on its holder alone", func() error {
		for _, topic := range topics {
			lock, err := st.Lock(ctx, topic)
			if err != nil || !lock.Held {
				return fmt.Errorf("%s: lock %+v, %v: want held", topic, lock, err)
			}
			for name, n := range nodes {
				if _, ok := n.Active()[topic]; ok != (name == lock.Lease.Holder) {
					return fmt.Errorf("%s: held by %s, active on %s: %v", topic, lock.Lease.Holder, name, ok)
				}
			}
		}
		return nil
	})
	// Hand-overs were graceful: released, not expired.
	for _, topic := range topics {
		hs, _ := st.Handovers(ctx, topic, 100)
		for _, h := range hs {
			if h.Reason != baton.ReasonReleased {
				t.Fatalf("%s: a hand-over %+v, want every one released", topic, h)
			}
		}
	}
}

// TestBalanceReachesTheShare: three nodes that share topics as they are
// created end at exactly their share (300 topics, 100 each) and stay
// there. Loads within the race slack of one another (an eighth of the
// least) used to stop short of it for good, handing the same topics back
// and forth between the nodes above the share (TestBalanceSettles).
func TestBalanceReachesTheShare(t *testing.T) {
	st := memstore.New(nil)
	const total = 300
	a, b, c := start(t, st.Handle(), "a"), start(t, st.Handle(), "b"), start(t, st.Handle(), "c")
	spread(t, st, total)
	even := func() bool { return slices.Equal(loads(a, b, c), []int{100, 100, 100}) }
	poll.True(t, 30*time.Second, "every node at its share", even)
	// Settled, not passing through: no node has a hand-off in flight, and
	// none is above its share to start another.
	ctx := context.Background()
	poll.Until(t, 10*time.Second, "every topic held by its one active node", func() error {
		for name, n := range map[string]*node.Node{"a": a, "b": b, "c": c} {
			for topic := range n.Active() {
				lock, err := st.Lock(ctx, topic)
				if err != nil || !lock.Held || lock.Lease.Holder != name {
					return fmt.Errorf("%s: lock %+v, %v: want held by its active node", topic, lock, err)
				}
			}
		}
		if !even() {
			return fmt.Errorf("loads %v", loads(a, b, c))
		}
		return nil
	})
}

// TestDrain: a drained node hands every topic over and takes none back;
// undrained, it gets its share again.
func TestDrain(t *testing.T) {
	st := memstore.New(nil)
	const total = 40
	a, b := start(t, st.Handle(), "a"), start(t, st.Handle(), "b")
	spread(t, st, total)
	poll.True(t, 20*time.Second, "two nodes balanced", func() bool { return balanced(loads(a, b), total) })
	a.Drain()
	poll.True(t, 20*time.Second, "a drained", func() bool { return len(a.Active()) == 0 && len(b.Active()) == total })
	if !a.Draining() {
		t.Fatal("a does not report draining")
	}
	a.Undrain()
	poll.True(t, 20*time.Second, "a given its share back", func() bool { return balanced(loads(a, b), total) })
}

// TestBalanceHandsOverIdlestFirst: a node that hands topics to a joiner
// hands over the ones that committed least recently, and keeps the topic
// being published meanwhile: its terminals see no hand-over.
func TestBalanceHandsOverIdlestFirst(t *testing.T) {
	st := memstore.New(nil)
	const total = 8
	a := start(t, st.Handle(), "a")
	topics := spread(t, st, total)
	busy := topics[total/2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(fmt.Sprint(i))})
			_, _ = st.Append(ctx, busy, []baton.Update{u})
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	// The busy topic has committed since the others' first commits.
	poll.True(t, 10*time.Second, "the busy topic publishing", func() bool {
		c, _ := st.Cursor(context.Background(), busy)
		return c.Seq > 5
	})
	b := start(t, st.Handle(), "b")
	poll.True(t, 20*time.Second, "two nodes balanced", func() bool { return balanced(loads(a, b), total) })
	cancel()
	<-done
	if _, ok := a.Active()[busy]; !ok {
		t.Errorf("the busy topic %s was handed over; a holds %v", busy, slices.Sorted(maps.Keys(a.Active())))
	}
	hs, err := st.Handovers(context.Background(), busy, 10)
	if err != nil || len(hs) != 0 {
		t.Errorf("the busy topic's hand-overs: %+v, %v; want none", hs, err)
	}
}
