package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// TestSnapshotThroughKill: a terminal joins a topic of 20,000 data ids with
// ?snapshot=1 while items (tombstones among them) are published, and the
// publisher is SIGKILLed while the terminal is in the middle of the
// snapshot; the terminal holds the stream until a successor publishes, so
// later snapshot pages are read after the hand-over (the server reads
// 1,000 rows a page, and 20,000 values of 200 bytes are more than the
// sockets buffer). What the terminal gets, read as raw events, must be
// every id's latest value as of the snapshot_end's seq (checked against
// the items the store published), then every item after it once, in
// order, up to the last one published.
func TestSnapshotThroughKill(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 20,000 ids to three nodes")
	}
	snapshotThroughKill(t, 20000, 20000)
}

// TestSnapshotThroughKillBig is the same at the scale, run only
// when asked (it takes minutes): BATON_BIG_SNAPSHOT=IDS,ITEMS, e.g.
// 100000,1000000 (docs/benchmarks.md, "Snapshots").
func TestSnapshotThroughKillBig(t *testing.T) {
	v := os.Getenv("BATON_BIG_SNAPSHOT")
	if v == "" {
		t.Skip("set BATON_BIG_SNAPSHOT=IDS,ITEMS to run")
	}
	a, b, _ := strings.Cut(v, ",")
	ids, err1 := strconv.Atoi(a)
	items, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || ids < 2000 || items < ids {
		t.Fatalf("BATON_BIG_SNAPSHOT=%q: want IDS,ITEMS with 2000 <= IDS <= ITEMS", v)
	}
	snapshotThroughKill(t, ids, items)
}

// snapshotThroughKill publishes ids data ids, then more items up to items
// in all, and runs TestSnapshotThroughKill's terminal on both engines.
func snapshotThroughKill(t *testing.T, ids, items int) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		const topic = "quotes"
		// The queue keeps 10,000 items: the older ones are trimmed while
		// the snapshot keeps every id.
		c := newClusterWith(t, eng, 3, testTTL, "", "--retain", "10000")
		cl, err := client.New(c.addrs(), client.Options{Backoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		// 200-byte values at 20,000 ids: more than the sockets buffer;
		// shorter ones at more ids.
		pad := strings.Repeat("x", max(20, 4_000_000/ids))
		rng := rand.New(rand.NewPCG(1, 2))
		n := 0
		batch := func(size int, id func(i int) int) []baton.Update {
			ups := make([]baton.Update, size)
			for i := range ups {
				n++
				ups[i] = baton.Update{ID: fmt.Sprintf("sym.%05d", id(i)), Value: json.RawMessage(fmt.Sprintf(`{"n":%d,"p":%q}`, n, pad)), MsgID: fmt.Sprintf("snap-%d", n)}
				if rng.IntN(20) == 0 {
					ups[i].Value, ups[i].Deleted = nil, true
				}
			}
			return ups
		}
		// sent is every update by the seq of its receipt: the oracle (the
		// queue does not keep them all). Every publish is acknowledged, or
		// the test fails, so it holds every published seq.
		var (
			mu        sync.Mutex
			sent      = make(map[uint64]baton.Update)
			lastAcked uint64
		)
		publish := func(ups []baton.Update) error {
			rs, err := cl.Publish(ctx, topic, ups)
			mu.Lock()
			defer mu.Unlock()
			for i, r := range rs {
				sent[r.Seq] = ups[i]
				lastAcked = max(lastAcked, r.Seq)
			}
			return err
		}
		for from := 0; from < items; from += 1000 {
			size := min(1000, items-from)
			if err := publish(batch(size, func(i int) int { return (from + i) % ids })); err != nil {
				t.Fatal(err)
			}
		}
		waitPublished := func(seq uint64) {
			poll.Until(t, 60*time.Second, "the cursor at "+strconv.FormatUint(seq, 10), func() error {
				var cur baton.Cursor
				if err := c.get("/v1/topics/"+topic+"/cursor", &cur); err != nil || cur.Seq < seq {
					return fmt.Errorf("cursor %d, %v", cur.Seq, err)
				}
				return nil
			})
		}
		waitPublished(uint64(items))

		// The source goes on publishing until told to stop.
		stop, srcDone := make(chan struct{}), make(chan error, 1)
		go func() {
			prng := rand.New(rand.NewPCG(3, 4))
			for {
				select {
				case <-stop:
					srcDone <- nil
					return
				default:
				}
				mu.Lock()
				ups := batch(20, func(int) int { return prng.IntN(ids) })
				mu.Unlock()
				if err := publish(ups); err != nil {
					srcDone <- err
					return
				}
			}
		}()

		victim, lease := c.holder(topic)
		// The terminal reads from a node that outlives the kill.
		var node string
		for _, nd := range c.nodes {
			if nd != victim {
				node = nd.URL()
				break
			}
		}
		term := &rawTerminal{t: t, url: node + "/v1/topics/" + topic + "/events"}
		killed := false
		term.onSnapshotItem = func(count int) {
			if count == 2000 && !killed {
				killed = true
				victim.Kill()
				// Hold the stream until the successor publishes.
				next, l2 := c.holder(topic, victim)
				if l2.Epoch <= lease.Epoch {
					t.Fatalf("successor %s at epoch %d, killed %d", next.Name, l2.Epoch, lease.Epoch)
				}
				var cur baton.Cursor
				poll.Until(t, 30*time.Second, "a commit by the successor", func() error {
					if err := c.get("/v1/topics/"+topic+"/cursor", &cur); err != nil || cur.Epoch <= lease.Epoch {
						return fmt.Errorf("cursor %+v, %v", cur, err)
					}
					return nil
				})
			}
		}
		state, seq := term.snapshot()
		if !killed {
			t.Fatal("the snapshot ended before the kill")
		}
		t.Logf("snapshot at seq %d: %d ids in %d pages or more", seq, len(state), ids/1000)

		// Some more after the snapshot, and the queue trimmed, then the
		// source stops.
		poll.Until(t, 30*time.Second, "items after the snapshot, and a trim", func() error {
			mu.Lock()
			acked := lastAcked
			mu.Unlock()
			var info baton.TopicInfo
			if err := c.get("/v1/topics/"+topic, &info); err != nil || acked < seq+500 || info.FirstSeq <= 1 {
				return fmt.Errorf("last acked %d, first kept %d, %v", acked, info.FirstSeq, err)
			}
			return nil
		})
		close(stop)
		if err := <-srcDone; err != nil {
			t.Fatalf("source: %v", err)
		}
		var cur baton.Cursor
		mu.Lock()
		acked := lastAcked
		mu.Unlock()
		waitPublished(acked)
		if err := c.get("/v1/topics/"+topic+"/cursor", &cur); err != nil {
			t.Fatal(err)
		}
		term.live(seq, cur.Seq)

		// Every receipt is in: the state the snapshot should be.
		mu.Lock()
		want, err := stateOf(sent, seq)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if !equalState(state, want) {
			t.Fatalf("snapshot at seq %d: %d ids, want %d (first difference: %s)", seq, len(state), len(want), firstDiff(state, want))
		}
	})
}

// stateOf folds the updates sent with seqs 1 to seq, which must all be
// there.
func stateOf(sent map[uint64]baton.Update, seq uint64) (map[string]string, error) {
	want := make(map[string]string)
	for s := uint64(1); s <= seq; s++ {
		u, ok := sent[s]
		switch {
		case !ok:
			return nil, fmt.Errorf("seq %d was published but no receipt names it", s)
		case u.Deleted:
			delete(want, u.ID)
		default:
			want[u.ID] = string(u.Value)
		}
	}
	return want, nil
}

// rawTerminal reads a topic's event stream as raw events, so that the
// server's every event is checked (the SDK drops duplicates).
type rawTerminal struct {
	t              *testing.T
	url            string
	resp           *http.Response
	er             *wire.EventReader
	onSnapshotItem func(count int)
}

func (r *rawTerminal) open(lastID string) {
	r.t.Helper()
	u := r.url
	if lastID == "" {
		u += "?snapshot=1"
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := (&http.Client{}).Do(req) // no timeout: a stream
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	r.resp, r.er = resp, wire.NewEventReader(resp.Body, 0)
	r.t.Cleanup(func() { resp.Body.Close() })
}

// snapshot reads the snapshot events up to snapshot_end: the state they
// make and the end's seq.
func (r *rawTerminal) snapshot() (map[string]string, uint64) {
	r.t.Helper()
	r.open("")
	state := make(map[string]string)
	for count, restarts := 1, 0; ; count++ {
		ev, err := r.er.Next()
		if err != nil {
			// A stream broken before snapshot_end (the server found the
			// catch-up trimmed, say): a new snapshot, the old one dropped.
			if restarts++; restarts > 3 {
				r.t.Fatalf("snapshot event %d: %v (after %d new snapshots)", count, err, restarts-1)
			}
			r.t.Logf("snapshot broken at event %d (%v): a new one", count, err)
			r.resp.Body.Close()
			r.open("")
			clear(state)
			continue
		}
		switch ev.Type {
		case wire.EventSnapshot:
			it, err := ev.SnapshotItem()
			if err != nil {
				r.t.Fatal(err)
			}
			if it.Deleted {
				delete(state, it.ID)
			} else {
				state[it.ID] = string(it.Value)
			}
			r.onSnapshotItem(count)
		case wire.EventSnapshotEnd:
			end, err := ev.SnapshotEnd()
			if err != nil || string(ev.ID) != strconv.FormatUint(end.Seq, 10) {
				r.t.Fatalf("snapshot_end %q id %q: %v", ev.Data, ev.ID, err)
			}
			return state, end.Seq
		default:
			r.t.Fatalf("event %q in the snapshot", ev.Type)
		}
	}
}

// live reads the items after seq up to last, on the same stream and, if
// it ends, resuming with Last-Event-ID: each seq once, in order.
func (r *rawTerminal) live(seq, last uint64) {
	r.t.Helper()
	for next := seq + 1; next <= last; {
		ev, err := r.er.Next()
		if err != nil {
			r.resp.Body.Close()
			r.open(strconv.FormatUint(next-1, 10))
			continue
		}
		if len(ev.Type) == 0 || ev.Type == "message" {
			continue
		}
		it, err := ev.Item()
		if err != nil {
			r.t.Fatalf("after seq %d: %v", next-1, err)
		}
		if it.Seq != next {
			r.t.Fatalf("item %d after %d: gap or duplicate", it.Seq, next-1)
		}
		next++
	}
}

func equalState(a, b map[string]string) bool { return firstDiff(a, b) == "" }

func firstDiff(got, want map[string]string) string {
	for id, v := range want {
		if got[id] != v {
			return fmt.Sprintf("%s: got %q, want %q", id, got[id], v)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			return fmt.Sprintf("%s: got %q, want none", id, got[id])
		}
	}
	return ""
}
