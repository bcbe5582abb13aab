package http

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/node"
)

// A publish that would create a topic over the node's cap is refused with
// 403 forbidden and appends nothing; existing topics keep working.
func TestMaxTopics(t *testing.T) {
	store := memstore.New(nil)
	newPublisher(t, store, testTopic).publish(1)
	n, err := node.New(store, node.Config{Node: "n", TTL: time.Second, MaxTopics: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, store, hub.Options{}, Config{AdmitTopic: n.AdmitTopic})
	resp, _, bad := e.post("other", `{"id":"a","value":1}`)
	if resp.StatusCode != 403 || bad.Error.Code != baton.CodeForbidden {
		t.Fatalf("a new topic over the cap: %d %+v", resp.StatusCode, bad.Error)
	}
	if _, err := store.Topic(context.Background(), "other"); !errors.Is(err, baton.ErrNotFound) {
		t.Fatalf("the refused topic was created: %v", err)
	}
	if resp, _, bad := e.post(testTopic, `{"id":"a","value":1}`); resp.StatusCode != 201 {
		t.Fatalf("an existing topic at the cap: %d %+v", resp.StatusCode, bad.Error)
	}
}
