package integration

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
)

// leasesByNode reads every topic's lock and counts the live holders; it
// fails the poll (an error) while a topic has none.
func (c *cluster) leasesByNode(topics []string) (map[string]int, error) {
	by := make(map[string]int)
	for _, topic := range topics {
		st := c.lock(topic)
		if !st.Held {
			return by, fmt.Errorf("%s has no holder", topic)
		}
		by[st.Lease.Holder]++
	}
	return by, nil
}

// balancedOver reports whether every named node holds leases and the most
// loaded holds at most 1.25 times as many as the least.
func balancedOver(by map[string]int, nodes ...string) error {
	lo, hi := -1, 0
	for _, n := range nodes {
		k := by[n]
		if lo < 0 || k < lo {
			lo = k
		}
		hi = max(hi, k)
	}
	if lo <= 0 || float64(hi) > 1.25*float64(lo) {
		return fmt.Errorf("leases by node %v: not balanced over %v", by, nodes)
	}
	return nil
}

// publishLive appends one item to topic through the first live node.
func (c *cluster) publishLive(topic string) {
	c.t.Helper()
	for _, nd := range c.nodes {
		if !nd.Alive() {
			continue
		}
		resp, err := httpc.Post(nd.URL()+"/v1/topics/"+topic+"/items", "application/json", strings.NewReader(`{"id":"k","value":1}`))
		if err != nil {
			c.t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			c.t.Fatalf("publish to %s: %d", topic, resp.StatusCode)
		}
		return
	}
	c.t.Fatal("no live node")
}

// publishedUpTo waits until every topic's cursor is at seq.
func (c *cluster) publishedUpTo(topics []string, seq uint64) {
	c.t.Helper()
	poll.Until(c.t, 60*time.Second, fmt.Sprintf("every topic published up to %d", seq), func() error {
		for _, topic := range topics {
			var cur baton.Cursor
			if err := c.get("/v1/topics/"+topic+"/cursor", &cur); err != nil {
				return err
			}
			if cur.Seq != seq {
				return fmt.Errorf("%s: cursor at %d", topic, cur.Seq)
			}
		}
		return nil
	})
}

// TestManyTopics: the node leases as a user with many topics meets them, on
// real processes. Topics spread over the nodes; a SIGKILL hands every topic
// of the killed node over at once (one expired record each, at the node
// lease's end); a node that joins is handed its share gracefully; `baton
// drain` empties a node and nothing is lost or published twice.
func TestManyTopics(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		const n = 60
		c := newCluster(t, eng, 3, testTTL)
		topics := make([]string, n)
		for i := range topics {
			topics[i] = fmt.Sprintf("instrument.%02d", i)
			publishOne(t, c, topics[i])
		}
		c.publishedUpTo(topics, 1)
		var by map[string]int
		poll.Until(t, 30*time.Second, "leases spread over the three nodes", func() (err error) {
			by, err = c.leasesByNode(topics)
			if err == nil {
				err = balancedOver(by, "n1", "n2", "n3")
			}
			return err
		})

		// SIGKILL the node holding the most topics: every one of them
		// changes hands, with one crashed record at the node lease's end
		// (a survivor's peer watch found the process gone).
		var victim *proc.Node
		for _, nd := range c.nodes {
			if victim == nil || by[nd.Name] > by[victim.Name] {
				victim = nd
			}
		}
		var orphans []string
		for _, topic := range topics {
			if c.lock(topic).Lease.Holder == victim.Name {
				orphans = append(orphans, topic)
			}
		}
		c.watched(victim)
		victim.Kill()
		for _, topic := range topics {
			c.publishLive(topic)
		}
		c.publishedUpTo(topics, 2)
		var ended time.Time
		for _, topic := range orphans {
			// The victim's record; later ones may follow, as the
			// survivors even out their loads.
			hs := c.handovers(topic)
			i := slices.IndexFunc(hs, func(h baton.ReleaseRecord) bool { return h.Holder == victim.Name })
			if i < 0 || hs[i].Reason != baton.ReasonCrashed || hs[i].Successor == "" {
				t.Fatalf("%s after the SIGKILL of its holder: records %+v", topic, hs)
			}
			if ended.IsZero() {
				ended = hs[i].At
			} else if !hs[i].At.Equal(ended) {
				t.Fatalf("%s's lease ended at %v, another of %s's at %v: not with the node lease", topic, hs[i].At, victim.Name, ended)
			}
		}

		// A node joins: it is handed its share.
		c.start("n4")
		live := []string{"n4"}
		for _, nd := range c.nodes {
			if nd.Alive() && nd.Name != "n4" {
				live = append(live, nd.Name)
			}
		}
		poll.Until(t, 60*time.Second, "the joiner handed its share", func() (err error) {
			by, err = c.leasesByNode(topics)
			if err == nil {
				err = balancedOver(by, live...)
			}
			return err
		})

		// Drain it again: it holds nothing, every topic has a publisher.
		out, err := exec.Command(batonBin, "drain", "--node", c.node("n4").Addr, "--timeout", "30s").CombinedOutput()
		if err != nil {
			t.Fatalf("baton drain: %v\n%s", err, out)
		}
		// The drained node's topics are in the standbys' hands within
		// milliseconds; every one has a holder, none on n4.
		poll.Until(t, 30*time.Second, "every topic held, none by the drained node", func() error {
			by, err := c.leasesByNode(topics)
			if err == nil && by["n4"] != 0 {
				err = fmt.Errorf("n4 still holds %d", by["n4"])
			}
			return err
		})
		for _, topic := range topics {
			c.publishLive(topic)
		}
		c.publishedUpTo(topics, 3)
		for _, topic := range topics {
			var items struct {
				Items []baton.Published `json:"items"`
			}
			if err := c.get("/v1/topics/"+topic+"/items?after=0&limit=10", &items); err != nil {
				t.Fatal(err)
			}
			seqs := make([]uint64, 0, len(items.Items))
			for _, it := range items.Items {
				seqs = append(seqs, it.Seq)
			}
			if !slices.Equal(seqs, []uint64{1, 2, 3}) {
				t.Fatalf("%s: items %v, want 1, 2, 3 once each", topic, seqs)
			}
		}
		// Hand-overs to and from the joiner were graceful.
		for _, topic := range topics {
			for _, h := range c.handovers(topic) {
				if (h.Holder == "n4" || h.Successor == "n4") && h.Reason != baton.ReasonReleased {
					t.Fatalf("%s: a hand-over involving the joiner %+v, want released", topic, h)
				}
			}
		}
	})
}
