package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/wire"
)

// AdmitTopic keeps the store under MaxTopics: existing topics are always
// admitted, a new one only under the cap, counting the new ones it
// admitted; at the cap it lists the store again at most once a second, so
// a topic created through another node is found.
func TestAdmitTopic(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Unix(1700000000, 0))
	st := memstore.New(clock)
	appendTo := func(topic string) {
		u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
		if _, err := st.Append(ctx, topic, []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
	}
	appendTo("a")
	appendTo("b")
	n, err := node.New(st, node.Config{Node: "n", TTL: time.Second, MaxTopics: 3, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	forbidden := func(topic string) bool {
		var e *wire.Error
		err := n.AdmitTopic(ctx, topic)
		if err != nil && !(errors.As(err, &e) && e.Code == baton.CodeForbidden) {
			t.Fatalf("AdmitTopic(%s): %v, want nil or forbidden", topic, err)
		}
		return err != nil
	}
	for _, tc := range []struct {
		topic     string
		forbidden bool
	}{
		{"a", false}, {"c", false}, // c is new, the third
		{"d", true},                // c counts though it is not created yet
		{"b", false}, {"c", false}, // known topics always
	} {
		if got := forbidden(tc.topic); got != tc.forbidden {
			t.Fatalf("AdmitTopic(%s) forbidden %v, want %v", tc.topic, got, tc.forbidden)
		}
	}
	appendTo("x") // through another node, over the cap
	if !forbidden("x") {
		t.Fatal("x admitted before the view was a second old")
	}
	clock.Advance(time.Second)
	if forbidden("x") {
		t.Fatal("x refused: the store was not listed again on a miss")
	}
	if !forbidden("y") {
		t.Fatal("y admitted over the cap")
	}

	unlimited, err := node.New(st, node.Config{Node: "u", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := unlimited.AdmitTopic(ctx, "z"); err != nil {
		t.Fatalf("MaxTopics 0: %v", err)
	}
}
