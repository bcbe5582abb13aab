package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// node is a server with its own hub on a shared store.
type node struct {
	srv *bhttp.Server
	hub *hub.Hub
	url string
}

func startNode(t *testing.T, st baton.Store) *node {
	t.Helper()
	h := hub.New(st, hub.Options{Recheck: 50 * time.Millisecond})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := bhttp.NewServer(bhttp.Config{Store: st, Hub: h, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Open(ln); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, hub: h, url: "http://" + ln.Addr().String()}
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	n.srv.Close()
	n.hub.Close()
}

// commit publishes count new items of topic, as a lease holder does.
func commit(t *testing.T, st baton.Store, leases map[string]baton.Lease, topic string, count int) {
	t.Helper()
	ctx := context.Background()
	l, ok := leases[topic]
	if !ok {
		var err error
		if l, err = leasetest.Acquire(ctx, st, topic, "pub", time.Hour); err != nil {
			t.Fatal(err)
		}
		leases[topic] = l
	}
	cur, err := st.Cursor(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ups := make([]baton.Update, count)
	for i := range ups {
		n := cur.Seq + uint64(i) + 1
		ups[i] = baton.Update{ID: "k", Value: json.RawMessage(fmt.Sprint(n)), MsgID: fmt.Sprintf("%s-%d", topic, n)}
	}
	if _, err := st.Append(ctx, topic, ups); err != nil {
		t.Fatal(err)
	}
	items, err := st.Items(ctx, topic, cur.Seq, count)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: cur.Seq, Items: items, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// TestSubscriberResumesAcrossNodes follows named topics and a pattern over
// each transport while the node it reads from closes: every item of every
// topic arrives once, in order, a topic created after the start included.
func TestSubscriberResumesAcrossNodes(t *testing.T) {
	for _, tr := range []client.Transport{client.TransportSSE, client.TransportWebSocket} {
		t.Run(string(tr), func(t *testing.T) {
			st := memstore.New(nil)
			n1, n2 := startNode(t, st), startNode(t, st)
			leases := map[string]baton.Lease{}
			for _, tp := range []string{"a", "b", "q.x"} {
				commit(t, st, leases, tp, 5)
			}
			c, err := client.New([]string{n1.url, n2.url}, client.Options{Backoff: time.Millisecond, StreamIdle: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Subscriber(client.SubscribeOptions{Topics: []string{"a", "b", "q.*"}, Positions: map[string]uint64{"b": 2}, Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			got := map[string][]uint64{}
			nodes := map[string]bool{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- s.Run(ctx, func(ev client.Event) error {
					mu.Lock()
					defer mu.Unlock()
					if ev.Type == wire.EventItem {
						got[ev.Topic] = append(got[ev.Topic], ev.Item.Seq)
						nodes[ev.Node] = true
					}
					return nil
				})
			}()
			count := func(tp string) int {
				mu.Lock()
				defer mu.Unlock()
				return len(got[tp])
			}
			poll.Until(t, 10*time.Second, "the first items", func() error {
				if count("a") < 5 || count("q.x") < 5 {
					return fmt.Errorf("%d of a, %d of q.x", count("a"), count("q.x"))
				}
				return nil
			})
			// Items while the serving node closes, and a new topic.
			commit(t, st, leases, "a", 3)
			mu.Lock()
			first := map[string]bool{}
			for n := range nodes {
				first[n] = true
			}
			mu.Unlock()
			for _, n := range []*node{n1, n2} {
				if first[n.url] {
					n.close()
				}
			}
			commit(t, st, leases, "b", 4)
			commit(t, st, leases, "q.new", 2)
			commit(t, st, leases, "a", 2)
			want := map[string]int{"a": 10, "b": 7, "q.x": 5, "q.new": 2}
			poll.Until(t, 15*time.Second, "every item", func() error {
				for tp, n := range want {
					if count(tp) < n {
						return fmt.Errorf("%s: %d of %d", tp, count(tp), n)
					}
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			start := map[string]uint64{"b": 2}
			for tp, seqs := range got {
				for i, seq := range seqs {
					if seq != start[tp]+uint64(i)+1 {
						t.Fatalf("%s: %v: not every item once in order", tp, seqs)
					}
				}
				if len(seqs) != want[tp] {
					t.Fatalf("%s: %d items, want %d", tp, len(seqs), want[tp])
				}
			}
			if len(nodes) != 2 {
				t.Fatalf("items from %v: want both nodes", nodes)
			}
			if p := s.Positions(); p["a"] != 10 || p["q.new"] != 2 {
				t.Fatalf("positions %v", p)
			}
		})
	}
}
