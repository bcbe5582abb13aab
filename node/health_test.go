package node_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/wire"
)

// blockingStore holds every commit until release is closed: a publisher
// that keeps its lease and does not advance.
type blockingStore struct {
	baton.Store
	release chan struct{}
}

func (s *blockingStore) Commit(ctx context.Context, c baton.Commit) (baton.Cursor, error) {
	select {
	case <-s.release:
		return s.Store.Commit(ctx, c)
	case <-ctx.Done():
		return baton.Cursor{}, ctx.Err()
	}
}

// TestStalledTopicIsAProblem: a topic this node publishes, with items
// waiting and a cursor that does not move for StallAfter, is reported
// stalled in its status and as a problem (what makes /readyz answer 503);
// once publishing goes on, both clear.
func TestStalledTopicIsAProblem(t *testing.T) {
	st := &blockingStore{Store: memstore.New(nil), release: make(chan struct{})}
	n, err := node.New(st, node.Config{Node: "a", Addr: "a:1", TTL: time.Second, StallAfter: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	if _, err := st.Append(context.Background(), "q", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	status := func(topics int) wire.Status {
		s, err := n.Status(context.Background(), topics)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Without a page of topics too: the problem comes from the stall
	// check of the topics this node publishes.
	poll.True(t, 20*time.Second, "q reported stalled", func() bool {
		s := status(0)
		return len(s.Topics) == 0 && len(s.Problems) == 1 && s.Problems[0].Kind == baton.ProblemStalled && s.Problems[0].Topic == "q"
	})
	if s := status(1); len(s.Topics) != 1 || !s.Topics[0].Stalled {
		t.Fatalf("q is a problem but not stalled in its status: %+v", s.Topics)
	}
	close(st.release)
	poll.True(t, 20*time.Second, "q published and no longer stalled", func() bool {
		s := status(1)
		return len(s.Topics) == 1 && !s.Topics[0].Stalled && s.Topics[0].QueueDepth == 0 && len(s.Problems) == 0
	})
}
