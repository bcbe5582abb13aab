package node_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/sqlite"
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

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // poll interval
	}
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
	eventually(t, "the topic published", func() bool {
		c, _ := sb.Cursor(ctx, "late")
		return c.Seq == 1
	})
	active := func(n *node.Node) bool { _, ok := n.Active()["late"]; return ok }
	if active(a) == active(b) {
		t.Fatalf("active on a: %v, on b: %v; want exactly one", active(a), active(b))
	}
	holder, other := a, b
	if active(b) {
		holder, other = b, a
	}
	st, err := other.Status(ctx)
	if err != nil || len(st.Topics) != 1 || st.Topics[0].Role != baton.RoleStandby || !st.Topics[0].Held ||
		st.Topics[0].Cursor.Seq != 1 || st.Topics[0].QueueDepth != 0 || len(st.Members) != 2 {
		t.Fatalf("status of the standby: %+v, %v", st, err)
	}
	closedAt := time.Now()
	holder.Close()
	eventually(t, "the other node active", func() bool { return active(other) })
	if time.Since(closedAt) > time.Second {
		t.Logf("hand-over took %v (TTL 1s): not released?", time.Since(closedAt))
	}
	hs, err := sa.Handovers(ctx, "late", 10)
	if err != nil || len(hs) != 1 || hs[0].Reason != baton.ReasonReleased {
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
