package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/wire"
)

// snapshotNode serves a memstore with items of 5 ids published, one of
// them deleted again, and returns it with a function that publishes more.
func snapshotNode(t *testing.T) (*client.Client, func(ups ...baton.Update)) {
	t.Helper()
	c, pub := snapshotNodeOf(t, "t")
	return c, func(ups ...baton.Update) { pub("t", ups...) }
}

// snapshotNodeOf is a node whose topics each hold the same 13 updates
// (the state: id0=10 id1=11 id2=7 id4=9, id3 deleted), and a function
// that publishes to one of them.
func snapshotNodeOf(t *testing.T, topics ...string) (*client.Client, func(topic string, ups ...baton.Update)) {
	t.Helper()
	ctx := context.Background()
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{})
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := bhttp.NewServer(bhttp.Config{Store: st, Hub: h})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close(); srv.Close(); h.Close() })
	leases := map[string]baton.Lease{}
	for _, tp := range topics {
		lease, err := leasetest.Acquire(ctx, st, tp, "n1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		leases[tp] = lease
	}
	var mu sync.Mutex
	publish := func(topic string, ups ...baton.Update) {
		mu.Lock()
		defer mu.Unlock()
		rs, err := st.Append(ctx, topic, ups)
		if err != nil {
			t.Error(err)
			return
		}
		its, err := st.Items(ctx, topic, rs[0].Seq-1, len(ups))
		if err == nil {
			lease := leases[topic]
			_, err = st.Commit(ctx, baton.Commit{Topic: topic, Epoch: lease.Epoch, Holder: "n1", PrevSeq: rs[0].Seq - 1, Items: its, At: time.Now()})
		}
		if err != nil {
			t.Error(err)
		}
	}
	var ups []baton.Update
	for i := range 12 {
		ups = append(ups, baton.Update{ID: fmt.Sprintf("id%d", i%5), Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)})
	}
	ups = append(ups, baton.Update{ID: "id3", Value: json.RawMessage("null"), MsgID: "m-del", Deleted: true})
	for _, tp := range topics {
		publish(tp, ups...)
	}
	c, err := client.New([]string{ts.URL}, client.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c, publish
}

func TestSnapshotPages(t *testing.T) {
	c, _ := snapshotNode(t)
	var ids []string
	after := ""
	for {
		page, err := c.Snapshot(context.Background(), "t", after, 3)
		if err != nil || page.Seq != 13 {
			t.Fatalf("snapshot after %q: seq %d, %v", after, page.Seq, err)
		}
		for _, it := range page.Items {
			ids = append(ids, fmt.Sprintf("%s=%s", it.ID, it.Value))
		}
		if after = page.NextAfterID; after == "" {
			break
		}
	}
	if fmt.Sprint(ids) != "[id0=10 id1=11 id2=7 id4=9]" {
		t.Fatalf("snapshot %v", ids)
	}
	_, err := c.Snapshot(context.Background(), "t", "", 100000)
	var ae *wire.Error
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "limit" {
		t.Fatalf("limit too large: %v", err)
	}
}

func TestSubscribeWithSnapshot(t *testing.T) {
	c, publish := snapshotNode(t)
	var got []string
	stop := errors.New("stop")
	err := c.Subscribe(context.Background(), "t", 0, func(ev client.Event) error {
		switch ev.Type {
		case client.EventSnapshotStart:
			got = append(got, "start")
		case wire.EventSnapshot:
			got = append(got, fmt.Sprintf("%s=%s", ev.Item.ID, ev.Item.Value))
		case wire.EventSnapshotEnd:
			got = append(got, fmt.Sprint("end ", ev.Seq))
			publish(baton.Update{ID: "id3", Value: json.RawMessage("99"), MsgID: "m-live"})
		case wire.EventItem:
			got = append(got, fmt.Sprintf("item %d %s=%s", ev.Item.Seq, ev.Item.ID, ev.Item.Value))
			return stop
		}
		return nil
	}, client.WithSnapshot())
	if !errors.Is(err, stop) {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[start id0=10 id1=11 id2=7 id4=9 end 13 item 14 id3=99]" {
		t.Fatalf("events %v", got)
	}
}

// TestSubscriberSnapshotManyTopics follows two named topics with
// Snapshot, on a multi-topic stream and on a WebSocket: each topic at
// position 0 gets its snapshot (start, items, end) and then its items;
// the empty one's snapshot is its end at 0.
func TestSubscriberSnapshotManyTopics(t *testing.T) {
	for _, tr := range []client.Transport{client.TransportSSE, client.TransportWebSocket} {
		t.Run(string(tr), func(t *testing.T) {
			c, publish := snapshotNode(t)
			s, err := c.Subscriber(client.SubscribeOptions{Topics: []string{"t", "u"}, Transport: tr, Snapshot: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			stop := errors.New("stop")
			var stoppedBy string
			err = s.Run(context.Background(), func(ev client.Event) error {
				if l := eventLine(ev); l != "" {
					got[ev.Topic] = append(got[ev.Topic], l)
				}
				if ev.Type == wire.EventSnapshotEnd && ev.Topic == "t" {
					publish(baton.Update{ID: "id3", Value: json.RawMessage("99"), MsgID: "m-live"})
				}
				// On a socket t's item may come before u's snapshot (the
				// subscriptions are served in turn): stop at the last.
				if len(got["t"]) == 7 && len(got["u"]) == 2 {
					stoppedBy = ev.Type
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "map[t:[start id0=10 id1=11 id2=7 id4=9 end 13 item 14 id3=99] u:[start end 0]]" {
				t.Fatalf("events %v", got)
			}
			// The event fn refused does not move its topic.
			want := map[string]uint64{"t": 14, "u": 0}
			if stoppedBy == wire.EventItem {
				want["t"] = 13
			}
			if pos := s.Positions(); pos["t"] != want["t"] || pos["u"] != want["u"] {
				t.Fatalf("positions %v, want %v (stopped by %s)", pos, want, stoppedBy)
			}
		})
	}
}

// TestSubscriberSnapshotPattern follows q.* with Snapshot, on a
// multi-topic stream and on a WebSocket: each topic the pattern selects
// gets its snapshot (start, items, end) and then its items; a topic it
// does not select is not sent.
func TestSubscriberSnapshotPattern(t *testing.T) {
	for _, tr := range []client.Transport{client.TransportSSE, client.TransportWebSocket} {
		t.Run(string(tr), func(t *testing.T) {
			c, publish := snapshotNodeOf(t, "q.a", "q.b", "x")
			s, err := c.Subscriber(client.SubscribeOptions{Topics: []string{"q.*"}, Transport: tr, Snapshot: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			stop := errors.New("stop")
			err = s.Run(context.Background(), func(ev client.Event) error {
				if l := eventLine(ev); l != "" {
					got[ev.Topic] = append(got[ev.Topic], l)
				}
				switch ev.Type {
				case wire.EventSnapshotEnd:
					if len(got["q.a"]) == 6 && len(got["q.b"]) == 6 {
						publish("x", baton.Update{ID: "id1", Value: json.RawMessage("98"), MsgID: "m-x"})
						publish("q.b", baton.Update{ID: "id3", Value: json.RawMessage("99"), MsgID: "m-live"})
					}
				case wire.EventItem:
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) {
				t.Fatal(err)
			}
			const snap = "start id0=10 id1=11 id2=7 id4=9 end 13"
			if fmt.Sprint(got) != "map[q.a:["+snap+"] q.b:["+snap+" item 14 id3=99]]" {
				t.Fatalf("events %v", got)
			}
			if pos := s.Positions(); pos["q.a"] != 13 || pos["q.b"] != 13 || len(pos) != 2 { // item 14 was refused by fn
				t.Fatalf("positions %v", pos)
			}
		})
	}
}

// eventLine is how the Subscriber tests write down an event ("": not
// one they record).
func eventLine(ev client.Event) string {
	switch ev.Type {
	case client.EventSnapshotStart:
		return "start"
	case wire.EventSnapshot:
		return fmt.Sprintf("%s=%s", ev.Item.ID, ev.Item.Value)
	case wire.EventSnapshotEnd:
		return fmt.Sprint("end ", ev.Seq)
	case wire.EventItem:
		return fmt.Sprintf("item %d %s=%s", ev.Item.Seq, ev.Item.ID, ev.Item.Value)
	}
	return ""
}
