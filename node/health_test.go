package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/testlog"
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

// TestLostNotificationsAreAProblem: the store's change notifications lost
// for longer than a lease TTL are a problem (what makes /readyz answer
// 503), logged once when it starts and once when it ends.
// TestFailingRenewalsAreAProblem: a node whose node-lease renewals fail
// for longer than its TTL reports it (GET /readyz then answers 503), and
// the problem clears once a renewal succeeds again.
func TestFailingRenewalsAreAProblem(t *testing.T) {
	st := &cutOff{failingRenewals: failingRenewals{Store: memstore.New(nil)}}
	n, err := node.New(st, node.Config{Node: "a", Addr: "a:1", TTL: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	problems := func() []baton.Problem { return problemsOf(t, n) }
	poll.True(t, 20*time.Second, "the node lease trusted", func() bool { _, ok := n.NodeLease(); return ok })
	if ps := problems(); len(ps) != 0 {
		t.Fatalf("problems before: %+v", ps)
	}
	st.fail.Store(true)
	poll.True(t, 20*time.Second, "failing renewals reported", func() bool {
		ps := problems()
		return len(ps) == 1 && ps[0].Kind == baton.ProblemLease && strings.Contains(ps[0].Message, "not renewed")
	})
	st.fail.Store(false)
	poll.True(t, 20*time.Second, "the problem cleared", func() bool { return len(problems()) == 0 })
}

// cutOff fails every node lease renewal and acquisition while fail is set:
// a node cut off from the store.
type cutOff struct {
	failingRenewals
}

func (s *cutOff) AcquireNode(ctx context.Context, node string, ttl time.Duration) (baton.NodeLease, error) {
	if s.fail.Load() {
		return baton.NodeLease{}, baton.ErrUnavailable
	}
	return s.Store.AcquireNode(ctx, node, ttl)
}

func TestLostNotificationsAreAProblem(t *testing.T) {
	var lost atomic.Bool
	var logs testlog.Buffer
	n, err := node.New(memstore.New(nil), node.Config{Node: "a", Addr: "a:1", TTL: 200 * time.Millisecond, Logger: logs.Logger(),
		Notifications: func() error {
			if lost.Load() {
				return errors.New("pub/sub down")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	problems := func() []baton.Problem { return problemsOf(t, n) }
	if ps := problems(); len(ps) != 0 {
		t.Fatalf("problems before: %+v", ps)
	}
	lost.Store(true)
	poll.True(t, 20*time.Second, "lost notifications reported", func() bool {
		ps := problems()
		return len(ps) == 1 && ps[0].Kind == baton.ProblemNotify && strings.Contains(ps[0].Message, "not re-established")
	})
	lost.Store(false)
	poll.True(t, 20*time.Second, "the problem cleared", func() bool { return len(problems()) == 0 })
	poll.True(t, 20*time.Second, "the end logged", func() bool {
		return strings.Contains(logs.String(), "store change notifications back")
	})
	if c := strings.Count(logs.String(), "store change notifications lost"); c != 1 {
		t.Errorf("the loss logged %d times, want once:\n%s", c, logs.String())
	}
}

// problemsOf reads the problems n reports in its status.
func problemsOf(t *testing.T, n *node.Node) []baton.Problem {
	t.Helper()
	s, err := n.Status(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return s.Problems
}
