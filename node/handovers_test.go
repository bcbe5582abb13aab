package node_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/testlog"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/node"
)

// TestHandoverLoggedOnce: the node a topic is handed over to logs the
// hand-over once, at info, with the topic, both epochs, the previous
// holder, the reason and how long the topic was without a holder, and
// tells OnHandover the record (the metrics).
func TestHandoverLoggedOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "n.db")
	sa, sb := open(t, path), open(t, path)
	a := start(t, sa, "a")
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	if _, err := sa.Append(ctx, "moving", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "a publishes the topic", func() bool {
		_, ok := a.Active()["moving"]
		return ok
	})
	var logs testlog.Buffer
	var mu sync.Mutex
	var told []baton.ReleaseRecord
	b, err := node.New(sb, node.Config{Node: "b", Addr: "b:1", TTL: time.Second, Logger: logs.Logger(),
		OnHandover: func(r baton.ReleaseRecord) { mu.Lock(); told = append(told, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a.Close()
	poll.True(t, 10*time.Second, "the hand-over logged by b", func() bool {
		return strings.Contains(logs.String(), "msg=hand-over")
	})
	b.Close() // waits for its hand-over reports
	// Only the hand-over from a (epoch 1) to b (epoch 2) is looked at: on
	// a loaded machine b's own lease may lapse and come back after it.
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "msg=hand-over") && strings.Contains(l, " epoch=2 ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d lines of the hand-over to epoch 2, want 1:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"level=INFO", "topic=moving", "epoch=2", "previous_epoch=1", "previous_holder=a", "reason=released", "without_holder="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the hand-over line lacks %q: %s", want, lines[0])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) == 0 || told[0].Epoch != 1 || told[0].SuccessorEpoch != 2 || told[0].Reason != baton.ReasonReleased {
		t.Errorf("OnHandover told %+v", told)
	}
}

// failingRenewals fails every node lease renewal while fail is set: the
// node cannot renew in time and must fail closed.
type failingRenewals struct {
	baton.Store
	fail atomic.Bool
}

func (s *failingRenewals) RenewNode(ctx context.Context, nl baton.NodeLease, ttl time.Duration) (baton.NodeLease, error) {
	if s.fail.Load() {
		return baton.NodeLease{}, baton.ErrUnavailable
	}
	return s.Store.RenewNode(ctx, nl, ttl)
}

// TestFailClosedCounted: a node whose renewals fail stops publishing its
// topic before its lease lapses, and tells OnFailClosed (the metrics'
// baton_lease_fail_closed_total) for the topic: once, unless a loaded
// machine made it fail closed before too.
func TestFailClosedCounted(t *testing.T) {
	st := &failingRenewals{Store: memstore.New(nil)}
	var mu sync.Mutex
	var told []string
	n, err := node.New(st, node.Config{Node: "a", Addr: "a:1", TTL: time.Second,
		OnFailClosed: func(topic string) { mu.Lock(); told = append(told, topic); mu.Unlock() }})
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
	poll.True(t, 10*time.Second, "q published", func() bool { _, ok := n.Active()["q"]; return ok })
	st.fail.Store(true)
	poll.True(t, 10*time.Second, "q given up", func() bool { _, ok := n.Active()["q"]; return !ok })
	st.fail.Store(false)
	mu.Lock()
	defer mu.Unlock()
	if len(told) == 0 || slices.ContainsFunc(told, func(s string) bool { return s != "q" }) {
		t.Errorf("OnFailClosed told %v, want q", told)
	}
}

// TestHandoverBurstReported: when many topics are handed over at once (a
// node leaving with 40), the successor reports every hand-over, once: the
// reports past the first few wait a while, so that their reads do not
// compete with the hand-overs, but none is dropped.
func TestHandoverBurstReported(t *testing.T) {
	ctx := context.Background()
	st := &gatedHandovers{Store: memstore.New(nil), open: make(chan struct{})}
	a := start(t, st, "a")
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	const topics = 40
	for i := range topics {
		if _, err := st.Append(ctx, "t"+strconv.Itoa(i), []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
	}
	poll.True(t, 10*time.Second, "a publishes every topic", func() bool { return len(a.Active()) == topics })
	var mu sync.Mutex
	told := make(map[string]int)
	b, err := node.New(st, node.Config{Node: "b", Addr: "b:1", TTL: time.Second,
		OnHandover: func(r baton.ReleaseRecord) { mu.Lock(); told[r.Topic]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a.Close()
	// The reads of the records wait until b holds every topic: the
	// reports pile up, as in a crash of a node with thousands.
	poll.True(t, 10*time.Second, "b publishes every topic", func() bool { return len(b.Active()) == topics })
	close(st.open)
	poll.True(t, 20*time.Second, "every hand-over reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(told) == topics
	})
	mu.Lock()
	defer mu.Unlock()
	for topic, k := range told {
		if k != 1 {
			t.Errorf("%s reported %d times", topic, k)
		}
	}
}

// gatedHandovers holds every read of the release records until open is
// closed.
type gatedHandovers struct {
	baton.Store
	open chan struct{}
}

func (g *gatedHandovers) Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.Handovers(ctx, topic, limit)
}

// countCursor counts the reads of the cursor.
type countCursor struct {
	baton.Store
	n atomic.Int64
}

func (c *countCursor) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	c.n.Add(1)
	return c.Store.Cursor(ctx, topic)
}

// TestOneCursorReadPerLease: taking a lease over reads the topic's cursor
// once, in the acquire itself (Lease.Cursor), for the publisher, its
// trimmer and its checkpointer together (a crash hands thousands of topics
// over at once, and every read counts), and they all start from it: the
// next item is published and signed.
func TestOneCursorReadPerLease(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New(nil)
	up := func(v string) baton.Update {
		u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(v), MsgID: "m" + v})
		return u
	}
	if _, err := mem.Append(ctx, "q", []baton.Update{up("1"), up("2")}); err != nil {
		t.Fatal(err)
	}
	a := start(t, mem, "a")
	poll.True(t, 10*time.Second, "a publishes", func() bool { c, _ := mem.Cursor(ctx, "q"); return c.Seq == 2 })
	a.Close()
	st := &countCursor{Store: mem}
	key, err := ledger.GenerateKey("b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.New(st, node.Config{Node: "b", Addr: "b:1", TTL: time.Second, Key: key, Retain: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	poll.True(t, 10*time.Second, "b publishes q", func() bool { _, ok := b.Active()["q"]; return ok })
	if _, err := mem.Append(ctx, "q", []baton.Update{up("3")}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the next item published, signed and the rest trimmed", func() bool {
		cp, err := mem.Checkpoint(ctx, "q")
		info, _ := mem.Topic(ctx, "q")
		return err == nil && cp.Size == 3 && info.FirstSeq == 3
	})
	// None at all: the acquire read it in the same step (Lease.Cursor).
	if n := st.n.Load(); n != 0 {
		t.Errorf("%d reads of the cursor for one lease, want 0 (the acquire's)", n)
	}
}
