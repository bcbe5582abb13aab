package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// tap is a raw event stream on one node, read in the background.
type tap struct {
	node string
	mu   sync.Mutex
	evs  []wire.Event
	done bool
}

func (c *cluster) tap(node, topic string) *tap {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", node+"/v1/topics/"+topic+"/events?after=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		c.t.Fatalf("stream %s on %s: %v %v", topic, node, err, resp)
	}
	tp := &tap{node: node}
	go func() {
		_ = wire.ReadEvents(resp.Body, func(ev wire.Event) error {
			tp.mu.Lock()
			tp.evs = append(tp.evs, ev.Clone())
			tp.mu.Unlock()
			return nil
		})
		tp.mu.Lock()
		tp.done = true
		tp.mu.Unlock()
	}()
	c.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return tp
}

// state returns the item seqs the tap read, its last event's type and
// whether the stream ended.
func (tp *tap) state() (seqs []uint64, last string, done bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, ev := range tp.evs {
		if ev.Type == wire.EventItem {
			s, _ := ev.Seq()
			seqs = append(seqs, s)
		}
	}
	if n := len(tp.evs); n > 0 {
		last = tp.evs[n-1].Type
	}
	return seqs, last, tp.done
}

// post appends n items to topic through node and returns their receipts.
func (c *cluster) post(node, topic string, n int) []baton.Receipt {
	c.t.Helper()
	var out []baton.Receipt
	for range n {
		resp, err := httpc.Post(node+"/v1/topics/"+topic+"/items", "application/json", strings.NewReader(`{"id":"k","value":1}`))
		if err != nil {
			c.t.Fatal(err)
		}
		var pr wire.PublishResponse
		err = json.NewDecoder(resp.Body).Decode(&pr)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 201 || pr.Receipt == nil {
			c.t.Fatalf("publish to %s: %d %v", topic, resp.StatusCode, err)
		}
		out = append(out, *pr.Receipt)
	}
	return out
}

// baton runs the CLI and returns its output.
func batonCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(batonBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("baton %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDeleteTopicLive: on three real nodes, a topic that is being
// published and read on every node is deleted with `baton topic delete`:
// every terminal of it gets a "deleted" event and its stream ends, no node
// holds its lease or lists it any more; another topic, published and read
// meanwhile, is untouched (the checker); the deleted topic can be used
// again, continuing its kept ledger; and `baton ledger verify` finds the
// whole store sound.
func TestDeleteTopicLive(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newCluster(t, eng, 3, testTTL)
		src, terms, follow := c.run("orders", 100)
		progress(t, src, 20)

		n1 := c.nodes[0].URL()
		before := c.post(n1, "doomed", 30)
		c.publishedUpTo([]string{"doomed"}, before[len(before)-1].Seq)
		var taps []*tap
		for _, n := range c.nodes {
			taps = append(taps, c.tap(n.URL(), "doomed"))
		}
		holder, _ := c.holder("doomed")
		// Items in flight: appended, maybe not yet published when the
		// delete lands (then they go with it, unpublished).
		c.post(holder.URL(), "doomed", 10)

		out := batonCLI(t, "topic", "delete", "doomed", "--node", strings.Join(c.addrs(), ","))
		var items, unpublished, ledgerSize int
		var epoch uint64
		var rest string
		if _, err := fmt.Sscanf(out, "deleted doomed: %d items (%d unpublished), lock epoch %d, ledger kept (%d leaves%s",
			&items, &unpublished, &epoch, &ledgerSize, &rest); err != nil || items < 10 || ledgerSize < 30 || ledgerSize > 40 {
			t.Fatalf("baton topic delete said %q (%v)", out, err)
		}
		poll.Until(t, 30*time.Second, "every terminal of the deleted topic to end with a deleted event", func() error {
			for _, tp := range taps {
				seqs, last, done := tp.state()
				if !done || last != wire.EventDeleted {
					return fmt.Errorf("stream on %s: %d items, last event %q, ended %v", tp.node, len(seqs), last, done)
				}
			}
			return nil
		})
		for _, tp := range taps {
			seqs, _, _ := tp.state()
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("stream on %s read seqs %v before the delete: not 1, 2, ...", tp.node, seqs)
				}
			}
		}
		c.unlisted("doomed")

		// Used again: the queue continues the kept ledger, under a new epoch.
		again := c.post(c.nodes[2].URL(), "doomed", 5)
		if again[0].Seq != uint64(ledgerSize)+1 {
			t.Fatalf("first seq after the delete: %d, want %d", again[0].Seq, ledgerSize+1)
		}
		c.publishedUpTo([]string{"doomed"}, again[len(again)-1].Seq)
		if _, l := c.holder("doomed"); l.Epoch <= epoch {
			t.Fatalf("epoch after the delete: %d, want above %d", l.Epoch, epoch)
		}
		fresh := c.tap(n1, "doomed")
		poll.Until(t, 30*time.Second, "a new terminal to read the new topic", func() error {
			seqs, last, _ := fresh.state()
			if len(seqs) < 5 {
				return fmt.Errorf("read %v, last event %q", seqs, last)
			}
			if seqs[0] != uint64(ledgerSize)+1 {
				return fmt.Errorf("read %v, want from %d after a reset", seqs, ledgerSize+1)
			}
			return nil
		})

		progress(t, src, 20)
		c.finish(src, terms, follow)
		verify := batonCLI(t, "ledger", "verify", "--quiet", "--store", c.store, "doomed")
		if !strings.Contains(verify, "doomed: "+fmt.Sprint(ledgerSize+5)+" leaves") || !strings.Contains(verify, ": OK") {
			t.Fatalf("ledger verify: %s", verify)
		}
		batonCLI(t, "ledger", "verify", "--quiet", "--store", c.store)
	})
}

// TestRetentionByAge: with --retain-age 1h on every node, a topic given an
// age of its own (1s, `baton topic retention`) has its published items
// trimmed for real, but for the cursor's; another keeps its items.
func TestRetentionByAge(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newClusterWith(t, eng, 2, testTTL, "", "--retain-age", "1h")
		n1 := c.nodes[0].URL()
		c.post(n1, "aged", 3)
		c.post(n1, "kept", 3)
		c.publishedUpTo([]string{"aged", "kept"}, 3)
		out := batonCLI(t, "topic", "retention", "aged", "--age", "1s", "--node", strings.Join(c.addrs(), ","))
		var rr wire.RetentionResponse
		if err := json.Unmarshal([]byte(out), &rr); err != nil || rr.Retention.Age != "1s" || rr.Effective.Age != "1s" {
			t.Fatalf("baton topic retention said %q (%v)", out, err)
		}
		// The publisher applies the change from the topic's next commit.
		poll.Until(t, 30*time.Second, "the aged items trimmed", func() error {
			c.post(n1, "aged", 1)
			var info baton.TopicInfo
			if err := c.get("/v1/topics/aged", &info); err != nil {
				return err
			}
			if info.FirstSeq <= 3 {
				return fmt.Errorf("first kept seq %d, want above 3 (published more than 1s ago)", info.FirstSeq)
			}
			return nil
		})
		var info baton.TopicInfo
		if err := c.get("/v1/topics/kept", &info); err != nil || info.FirstSeq != 1 {
			t.Fatalf("the topic with the default age: %+v, %v; want every item kept", info, err)
		}
		out = batonCLI(t, "topic", "retention", "kept", "--node", c.addrs()[1])
		rr = wire.RetentionResponse{}
		if err := json.Unmarshal([]byte(out), &rr); err != nil || rr.Retention.Age != "" || rr.Effective.Age != "1h0m0s" {
			t.Fatalf("baton topic retention kept said %q (%v)", out, err)
		}
	})
}

// TestDeleteTopicLedger: `baton topic delete --ledger=delete` takes the
// ledger too; the topic used again starts a new log at seq 1, which is
// published and signed, every node's witness restarting its copy of the
// old log, and which `baton ledger verify` finds sound.
func TestDeleteTopicLedger(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newCluster(t, eng, 2, testTTL)
		n1 := c.nodes[0].URL()
		c.post(n1, "erased", 5)
		c.publishedUpTo([]string{"erased"}, 5)
		out := batonCLI(t, "topic", "delete", "erased", "--ledger", "delete", "--node", c.addrs()[1])
		if !strings.Contains(out, "ledger deleted") {
			t.Fatalf("baton topic delete said %q", out)
		}
		c.unlisted("erased")
		again := c.post(n1, "erased", 3)
		if again[0].Seq != 1 {
			t.Fatalf("first seq after a ledger delete: %d, want 1", again[0].Seq)
		}
		c.publishedUpTo([]string{"erased"}, 3)
		// Every node's witness restarted its copy and accepts the new log.
		poll.Until(t, 30*time.Second, "every node to serve a checkpoint of the new log", func() error {
			for _, n := range c.nodes {
				resp, err := httpc.Get(n.URL() + "/v1/topics/erased/checkpoint")
				if err != nil {
					return err
				}
				var cp struct{ Size uint64 }
				err = json.NewDecoder(resp.Body).Decode(&cp)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || cp.Size != 3 {
					return fmt.Errorf("%s: %d, checkpoint of size %d (%v)", n.Name, resp.StatusCode, cp.Size, err)
				}
			}
			return nil
		})
		verify := batonCLI(t, "ledger", "verify", "--quiet", "--store", c.store, "erased")
		if !strings.Contains(verify, "erased: 3 leaves") || !strings.Contains(verify, ": OK") {
			t.Fatalf("ledger verify: %s", verify)
		}
	})
}

// unlisted waits until no node lists topic as one it serves, nor holds
// its lease: each has seen it deleted (node.Node.Forget), when it listed the
// store's topics next (within 100 ms of the delete's signal).
func (c *cluster) unlisted(topic string) {
	c.t.Helper()
	poll.Until(c.t, 30*time.Second, "no node to serve or hold "+topic, func() error {
		for _, n := range c.nodes {
			var st wire.Status
			resp, err := httpc.Get(n.URL() + "/v1/status?topics=1000")
			if err != nil {
				return err
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				return err
			}
			for _, ts := range st.Topics {
				if ts.Topic == topic {
					return fmt.Errorf("%s still serves it", n.Name)
				}
			}
		}
		if st := c.lock(topic); st.Held {
			return fmt.Errorf("held by %s epoch %d", st.Lease.Holder, st.Lease.Epoch)
		}
		return nil
	})
}
