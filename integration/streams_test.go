package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// follower records what one Subscriber delivered.
type follower struct {
	mu    sync.Mutex
	seqs  map[string][]uint64
	nodes map[string]bool
	bad   error
	done  chan error
	sub   *client.Subscriber
}

func (f *follower) event(ev client.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Type != wire.EventItem {
		f.bad = fmt.Errorf("%s event on %s: no item should be lost", ev.Type, ev.Topic)
		return nil
	}
	h := baton.HashItem(ev.Topic, baton.Update{ID: ev.Item.ID, Value: ev.Item.Value, MsgID: ev.Item.MsgID, Deleted: ev.Item.Deleted})
	if h != ev.Item.Hash && f.bad == nil {
		f.bad = fmt.Errorf("%s/%d: hash %s, recomputed %s", ev.Topic, ev.Item.Seq, ev.Item.Hash, h)
	}
	f.seqs[ev.Topic] = append(f.seqs[ev.Topic], ev.Item.Seq)
	f.nodes[ev.Node] = true
	return nil
}

func (f *follower) last(topic string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seqs[topic]
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// TestManyTopicsKillPublisher follows many topics on one multi-topic SSE
// stream and on one WebSocket, both reading from the node that publishes
// them, and SIGKILLs that node while a source publishes to every topic:
// after resuming on another node, every item of every topic arrives once,
// in order; and a pattern finds a topic created after the streams opened.
func TestManyTopicsKillPublisher(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newCluster(t, eng, 3, testTTL)
		const n = 20
		var topics []string
		for i := range n {
			topics = append(topics, fmt.Sprintf("m.%02d", i))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pub, err := client.New(c.addrs(), client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			acked = map[string]uint64{}
		)
		publish := func(topic string, k int) {
			rs, err := pub.Publish(ctx, topic, []baton.Update{{ID: fmt.Sprintf("k%d", k%7), Value: json.RawMessage(fmt.Sprint(k))}})
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("publish %s: %v", topic, err)
				}
				return
			}
			mu.Lock()
			acked[topic] = max(acked[topic], rs[0].Seq)
			mu.Unlock()
		}
		for _, tp := range topics {
			publish(tp, 0)
		}
		// Both streams start on the node that publishes m.00 (the
		// client tries the second of its nodes first).
		victim, _ := c.holder(topics[0])
		var order []string
		for _, nd := range c.nodes {
			if nd != victim {
				order = append(order, nd.Addr)
			}
		}
		order = []string{order[0], victim.Addr, order[1]}
		sel := append(append([]string(nil), topics[:n/2]...), "m.*", "late.*")
		var followers []*follower
		for _, tr := range []client.Transport{client.TransportSSE, client.TransportWebSocket} {
			cl, err := client.New(append([]string(nil), order...), client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, StreamIdle: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s, err := cl.Subscriber(client.SubscribeOptions{Topics: sel, Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			f := &follower{seqs: map[string][]uint64{}, nodes: map[string]bool{}, done: make(chan error, 1), sub: s}
			go func() { f.done <- s.Run(ctx, f.event) }()
			followers = append(followers, f)
		}

		// A source publishing to every topic in turn.
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var sent sync.Map
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 1; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				publish(topics[k%n], k)
				sent.Store("k", k)
			}
		}()
		progressed := func(min int) func() error {
			return func() error {
				if v, ok := sent.Load("k"); !ok || v.(int) < min {
					return fmt.Errorf("source at %v", v)
				}
				return nil
			}
		}
		poll.Until(t, 30*time.Second, "the source's first items", progressed(2*n))
		poll.Until(t, 30*time.Second, "the streams on the victim", func() error {
			for _, f := range followers {
				if f.last(topics[0]) == 0 {
					return fmt.Errorf("no item of %s yet", topics[0])
				}
			}
			return nil
		})
		victim.Kill()
		poll.Until(t, 60*time.Second, "the source after the kill", progressed(6*n))
		close(stop)
		wg.Wait()
		// A topic made now: the pattern streams find it.
		publish("late.x", 0)
		publish("late.x", 1)

		mu.Lock()
		want := maps.Clone(acked)
		mu.Unlock()
		poll.Until(t, 60*time.Second, "every item on both streams", func() error {
			for i, f := range followers {
				for tp, seq := range want {
					if got := f.last(tp); got < seq {
						return fmt.Errorf("follower %d: %s at %d of %d", i, tp, got, seq)
					}
				}
			}
			return nil
		})
		cancel()
		for i, f := range followers {
			if err := <-f.done; err != nil {
				t.Errorf("follower %d: %v", i, err)
			}
			f.mu.Lock()
			if f.bad != nil {
				t.Errorf("follower %d: %v", i, f.bad)
			}
			for tp, seqs := range f.seqs {
				for j, seq := range seqs {
					if seq != uint64(j)+1 {
						t.Fatalf("follower %d: %s: %v: not every item once, in order", i, tp, seqs)
					}
				}
			}
			if d := f.sub.Duplicates(); d != 0 {
				t.Errorf("follower %d: %d duplicates: a node did not resume exactly at the positions", i, d)
			}
			if !f.nodes["http://"+victim.Addr] || len(f.nodes) < 2 {
				t.Errorf("follower %d read from %v: want the victim, then another node", i, f.nodes)
			}
			f.mu.Unlock()
		}
		t.Logf("topics %d, items %v", len(want), want)
	})
}
