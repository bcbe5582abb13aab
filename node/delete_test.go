package node_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/node"
)

// TestDeleteWhilePublished: two nodes on one SQLite file; a topic they
// publish is deleted through the store. The holder's lease is fenced,
// both nodes stop serving the topic and say so (TopicDeleted); the other
// topic goes on untouched; an append creates the topic again and it is
// published again, continuing the kept ledger.
func TestDeleteWhilePublished(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "n.db")
	sa, sb := open(t, path), open(t, path)
	var mu sync.Mutex
	told := map[string][]string{}
	startTold := func(st baton.Store, name string) *node.Node {
		n, err := node.New(st, node.Config{Node: name, Addr: name + ":1", TTL: time.Second,
			TopicDeleted: func(topic string) { mu.Lock(); told[name] = append(told[name], topic); mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a, b := startTold(sa, "a"), startTold(sb, "b")
	appendOne := func(topic string) {
		u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
		if _, err := sa.Append(ctx, topic, []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
	}
	published := func(topic string, seq uint64) {
		poll.True(t, 10*time.Second, "the topic published", func() bool {
			c, _ := sb.Cursor(ctx, topic)
			return c.Seq == seq
		})
	}
	appendOne("doomed")
	appendOne("kept")
	published("doomed", 1)
	published("kept", 1)
	for _, n := range []*node.Node{a, b} {
		poll.True(t, 10*time.Second, "the nodes to list both topics", func() bool {
			st, err := n.Status(ctx, 10)
			return err == nil && len(st.Topics) == 2
		})
	}

	d, err := sb.DeleteTopic(ctx, "doomed", baton.DeleteOptions{})
	if err != nil || d.LedgerSize != 1 {
		t.Fatalf("DeleteTopic: %+v, %v", d, err)
	}
	poll.True(t, 10*time.Second, "both nodes to stop serving the deleted topic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(told["a"], "doomed") && slices.Contains(told["b"], "doomed")
	})
	for _, n := range []*node.Node{a, b} {
		if _, ok := n.Active()["doomed"]; ok {
			t.Fatal("a node still publishes the deleted topic")
		}
	}
	mu.Lock()
	if slices.Contains(told["a"], "kept") || slices.Contains(told["b"], "kept") {
		t.Fatalf("a node forgot the topic that was not deleted: %v", told)
	}
	mu.Unlock()
	appendOne("kept")
	published("kept", 2)

	appendOne("doomed")
	published("doomed", 2) // the kept ledger goes on
}
