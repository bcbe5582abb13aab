package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// forwards reads a node's count of its clients' appends with outcome
// (baton_append_forwards_total; 0 if none yet).
func forwards(t *testing.T, c *cluster, n *proc.Node, outcome string) float64 {
	t.Helper()
	return max(0, scrapeAs(t, n.URL()+"/metrics", c.token, `baton_append_forwards_total{outcome="`+outcome+`"}`))
}

// firstHolder publishes topic's first item (msg id "first") at the first
// node with token, and returns the node that holds the topic's lease and
// the others, once each of them watches it (forwarding needs the watch).
func (c *cluster) firstHolder(topic, token string) (*proc.Node, []*proc.Node) {
	c.t.Helper()
	if status, b := publishOnce(c.t, c.nodes[0].URL(), topic, token, inHeader, "first"); status != http.StatusCreated {
		c.t.Fatalf("first publish: %d %s", status, b)
	}
	holder, _ := c.holder(topic)
	var others []*proc.Node
	for _, n := range c.nodes {
		if n != holder {
			others = append(others, n)
			c.watchedBy(n, holder)
		}
	}
	return holder, others
}

// scrapeAs is scrape with a token.
func scrapeAs(t *testing.T, url, token, series string) float64 {
	t.Helper()
	if token == "" {
		return scrape(t, url, series)
	}
	return scrape(t, url+"?"+auth.QueryParam+"="+token, series)
}

// TestAppendsForwardedToTheHolder: three real nodes on one SQLite file,
// with access tokens on. An item published at a node that does not hold
// its topic's lease is appended by the holder's node (which publishes it
// in the append's own write); the publisher's token is checked where it
// arrived, the forward carries the nodes' signature, not the token. When
// the holder hangs (SIGSTOP), the other nodes append themselves: every
// publish is answered, and once the holder resumes no item is there twice,
// even those whose forward it took before it stopped.
func TestAppendsForwardedToTheHolder(t *testing.T) {
	key, _ := hmacKey(t)
	admin := mint(t, key, "--admin", "--subscribe", "*", "--sub", "ops")
	pub := mint(t, key, "--publish", "fw.*", "--sub", "src")
	c := newClusterWith(t, sqliteEngine, 3, 10*time.Second, admin, "--jwt-key", key)
	const topic = "fw.orders"
	holder, others := c.firstHolder(topic, pub)

	// Each other node forwards. Its elector parks behind the holder after
	// reading the lock, so the first publishes may go local: poll.
	sent := 0
	publish := func(n *proc.Node) {
		t.Helper()
		sent++
		id := "m" + strconv.Itoa(sent)
		if status, b := publishOnce(t, n.URL(), topic, pub, inHeader, id); status != http.StatusCreated {
			t.Fatalf("publish %s at %s: %d %s", id, n.Name, status, b)
		}
	}
	for _, n := range others {
		poll.Until(t, 30*time.Second, n.Name+" forwarding to "+holder.Name, func() error {
			publish(n)
			if f := forwards(t, c, n, "forwarded"); f < 1 {
				return fmt.Errorf("forwarded %v", f)
			}
			return nil
		})
	}
	// From now on every publish at another node is forwarded.
	appended := func(n *proc.Node) float64 {
		return max(0, scrapeAs(t, n.URL()+"/metrics", c.token, `baton_items_appended_total{topic="`+topic+`"}`))
	}
	before := map[*proc.Node]float64{}
	fwd := map[*proc.Node]float64{}
	for _, n := range c.nodes {
		before[n], fwd[n] = appended(n), forwards(t, c, n, "forwarded")
	}
	const each = 10
	for _, n := range others {
		for range each {
			publish(n)
		}
	}
	for _, n := range others {
		if got := forwards(t, c, n, "forwarded") - fwd[n]; got != each {
			t.Errorf("%s forwarded %v of its %d publishes", n.Name, got, each)
		}
		if got := appended(n) - before[n]; got != 0 {
			t.Errorf("%s appended %v items itself", n.Name, got)
		}
	}
	if got := appended(holder) - before[holder]; got != 2*each {
		t.Errorf("the holder %s appended %v items, want the %d forwarded", holder.Name, got, 2*each)
	}

	// The holder hangs: the others append themselves.
	if err := holder.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = holder.Resume()
		}
	}()
	fallback := forwards(t, c, others[0], "fallback")
	for range 5 {
		publish(others[0])
	}
	if got := forwards(t, c, others[0], "fallback") - fallback; got < 1 {
		t.Errorf("%s fell back %v times while the holder hung, want at least once", others[0].Name, got)
	}
	// The store may have fenced it (SIGKILL) if it stopped inside a write
	// (docs/operations.md): the items are checked all the same.
	if err := holder.Resume(); err != nil {
		t.Logf("resume %s: %v", holder.Name, err)
	}
	resumed = true

	// Every msg id once, in the published order of one chain.
	want := sent + 1 // and "first"
	poll.Until(t, 30*time.Second, "every item published", func() error {
		var r wire.ItemsResponse
		if err := c.get("/v1/topics/"+topic+"/items?limit=1000", &r); err != nil {
			return err
		}
		seen := map[string]bool{}
		for i, it := range r.Items {
			if seen[it.MsgID] {
				b, _ := json.Marshal(it)
				t.Fatalf("msg id %s appended twice: %s", it.MsgID, b)
			}
			seen[it.MsgID] = true
			if it.Seq != uint64(i+1) {
				t.Fatalf("item %d has seq %d", i, it.Seq)
			}
		}
		if len(seen) != want {
			return fmt.Errorf("%d of %d items published", len(seen), want)
		}
		return nil
	})
}

// watchedBy waits until n's peer watch holds a connection to peer's
// process (GET /v1/status, watching).
func (c *cluster) watchedBy(n, peer *proc.Node) {
	c.t.Helper()
	poll.Until(c.t, 30*time.Second, n.Name+" watching "+peer.Name, func() error {
		var st wire.Status
		if err := c.getFrom(n, "/v1/status", &st); err != nil {
			return err
		}
		for _, w := range st.Watching {
			if w == peer.Name {
				return nil
			}
		}
		return fmt.Errorf("%s watches %v", n.Name, st.Watching)
	})
}
