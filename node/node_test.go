package node_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/sqlite"
	"github.com/baton-pub/baton/wire"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func start(t *testing.T, st baton.Store, name string) *node.Node {
	t.Helper()
	n, err := node.New(st, node.Config{Node: name, Addr: name + ":1", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestNodesShareTopics: two nodes on one file (two handles, as two
// processes) find a topic that appears after they started; exactly one
// publishes it; closing it hands the topic over at once; status reports
// roles, holder, cursor and queue depth.
func TestNodesShareTopics(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "n.db")
	sa, sb := open(t, path), open(t, path)
	a, b := start(t, sa, "a"), start(t, sb, "b")

	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	if _, err := sa.Append(ctx, "late", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the topic published", func() bool {
		c, _ := sb.Cursor(ctx, "late")
		return c.Seq == 1
	})
	active := func(n *node.Node) bool { _, ok := n.Active()["late"]; return ok }
	if active(a) == active(b) {
		t.Fatalf("active on a: %v, on b: %v; want exactly one", active(a), active(b))
	}
	holder, other, otherName := a, b, "b"
	if active(b) {
		holder, other, otherName = b, a, "a"
	}
	// The standby lists the store's topics at most every discoverGap
	// after a new one appears.
	var st wire.Status
	var err error
	poll.True(t, 10*time.Second, "the standby to list the topic", func() bool {
		st, err = other.Status(ctx, 10)
		return err != nil || len(st.Topics) == 1
	})
	if err != nil || len(st.Topics) != 1 || st.Topics[0].Role != baton.RoleStandby || !st.Topics[0].Held ||
		st.Topics[0].Cursor.Seq != 1 || st.Topics[0].QueueDepth != 0 || len(st.Members) != 2 {
		t.Fatalf("status of the standby: %+v, %v", st, err)
	}
	holder.Close()
	poll.True(t, 10*time.Second, "the other node active", func() bool { return active(other) })
	// At once: the holder released the lease rather than letting it lapse.
	hs, err := sa.Handovers(ctx, "late", 10)
	if err != nil || len(hs) != 1 || hs[0].Reason != baton.ReasonReleased || hs[0].Successor != otherName {
		t.Fatalf("handovers: %+v, %v", hs, err)
	}
	ms, _ := sa.Members(ctx)
	if len(ms) != 1 {
		t.Fatalf("members after close: %+v", ms)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []node.Config{
		{Node: "", TTL: time.Second},
		{Node: "a b", TTL: time.Second},
		{Node: "a", TTL: time.Millisecond},
		{Node: "a", TTL: time.Second, MaxLeases: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
}

// TestMaxLeasesHoldsUnderARace: topics that appear together start their
// electors together; a node with MaxLeases 2 takes two of five, never
// more (each race holds a place until it is decided).
func TestMaxLeasesHoldsUnderARace(t *testing.T) {
	ctx := context.Background()
	st := open(t, filepath.Join(t.TempDir(), "n.db"))
	topics := []string{"a", "b", "c", "d", "e"}
	for _, topic := range topics {
		u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
		if _, err := st.Append(ctx, topic, []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := node.New(st, node.Config{Node: "a", Addr: "a:1", TTL: time.Second, MaxLeases: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	held := func() int {
		k := 0
		for _, topic := range topics {
			if l, err := st.Lock(ctx, topic); err == nil && l.Held {
				k++
			}
		}
		return k
	}
	// Held in the store before the acquire's answer reaches the node:
	// wait for both.
	poll.True(t, 10*time.Second, "two leases taken", func() bool { return held() >= 2 && len(n.Active()) >= 2 })
	// Every elector has raced by now (their first race comes at once);
	// a third lease would show within a renewal.
	for range 5 {
		if k := held(); k != 2 {
			t.Fatalf("%d leases held with MaxLeases 2", k)
		}
		if k := len(n.Active()); k != 2 {
			t.Fatalf("%d topics active with MaxLeases 2", k)
		}
		time.Sleep(100 * time.Millisecond) // between looks: this test asserts a "never"
	}
}
