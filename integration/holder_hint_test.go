package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/browser"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// TestClientPublishesToTheHolder: three real nodes, on one SQLite file and
// on Redis. A node that does not hold a topic's lease names the holder in
// its answer (Baton-Holder), and the Go client, given every node, sends
// the topic's next publishes there: the holder appends them itself and,
// its publisher caught up, publishes most with their append
// (baton_items_published_on_append_total). On SQLite the other nodes
// forward at most the publish that taught the client.
func TestClientPublishesToTheHolder(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newCluster(t, eng, 3, 10*time.Second)
		const topic = "hint.orders"
		holder, others := c.holderNamed(topic)
		forwarded := func() float64 { return forwardedBy(t, c, others) }
		appended := func(n *proc.Node) float64 {
			return max(0, scrapeAs(t, n.URL()+"/metrics", c.token, `baton_items_appended_total{topic="`+topic+`"}`))
		}
		onAppend := func(n *proc.Node) float64 {
			return max(0, scrapeAs(t, n.URL()+"/metrics", c.token, `baton_items_published_on_append_total`))
		}
		fwd, held, fused := forwarded(), appended(holder), onAppend(holder)

		// The client knows the holder last: in turn, it would start elsewhere.
		cl, err := client.New([]string{others[0].URL(), others[1].URL(), holder.URL()}, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		const n = 30
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := range n {
			rs, err := cl.Publish(ctx, topic, []baton.Update{{ID: "k", Value: json.RawMessage(fmt.Sprint(i))}})
			if err != nil {
				t.Fatal(err)
			}
			// Each item published before the next is sent, so that the
			// holder's publisher is caught up when it comes: a client
			// that sends faster can keep it busy committing the item
			// before, and then its appends take the read and commit
			// (docs/benchmarks.md, "What remains weak").
			c.publishedUpTo([]string{topic}, rs[0].Seq)
		}
		if got := forwarded() - fwd; got > 1 {
			t.Errorf("the other nodes forwarded %v of the client's %d publishes, want at most the first", got, n)
		}
		// On SQLite the first publish is forwarded to the holder; on
		// Redis the node it reached appends it.
		if got := appended(holder) - held; got < n-1 {
			t.Errorf("the holder %s appended %v of the client's %d items, want at least %d", holder.Name, got, n, n-1)
		}
		if got := onAppend(holder) - fused; got < n/2 {
			t.Errorf("the holder %s published %v of the client's %d items with their append, want most", holder.Name, got, n)
		}
	})
}

// forwardedBy is the appends the nodes forwarded to a lease holder.
func forwardedBy(t *testing.T, c *cluster, nodes []*proc.Node) (sum float64) {
	t.Helper()
	for _, n := range nodes {
		sum += forwards(t, c, n, "forwarded")
	}
	return sum
}

// holderNamed publishes topic's first item and returns the node that holds
// its lease and the others, once each of the others names the holder in
// its answers (its elector has parked behind the holder; until then it
// appends itself).
func (c *cluster) holderNamed(topic string) (*proc.Node, []*proc.Node) {
	t := c.t
	t.Helper()
	holder, others := c.firstHolder(topic, "")
	for i, n := range others {
		poll.Until(t, 30*time.Second, n.Name+" naming "+holder.Name, func() error {
			req, _ := http.NewRequest("POST", n.URL()+"/v1/topics/"+topic+"/items",
				strings.NewReader(fmt.Sprintf(`{"id":"k","value":1,"msg_id":"warm-%d-%d"}`, i, time.Now().UnixNano())))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if got, want := resp.Header.Get(wire.HolderHeader), strings.TrimPrefix(holder.URL(), "http://"); got != want {
				return fmt.Errorf("%s %q, want %q", wire.HolderHeader, got, want)
			}
			return nil
		})
	}
	return holder, others
}

// TestJSClientBrowserFollowsHolder: the built JavaScript client in headless
// Chromium, on a page of another origin listed in --cors-origins, given
// three real SQLite nodes with the lease holder last. The holder's name
// reaches the page only if the nodes expose Baton-Holder to it (CORS): the
// client then sends the topic's next publishes there, and the other nodes
// forward at most the one that taught it.
func TestJSClientBrowserFollowsHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium, node and three nodes")
	}
	buildJS(t)
	page := jsPage(t)
	c := newClusterWith(t, sqliteEngine, 3, 10*time.Second, "", "--cors-origins", page.URL)
	const topic = "hint.page"
	holder, others := c.holderNamed(topic)
	forwarded := func() float64 { return forwardedBy(t, c, others) }
	fwd := forwarded()
	ctx := browser.Start(t)
	if err := browser.Navigate(ctx, page.URL); err != nil {
		t.Fatal(err)
	}
	nodes, _ := json.Marshal([]string{others[0].URL(), others[1].URL(), holder.URL()})
	const n = 20
	seqs, err := browser.Eval[[]uint64](ctx, 30*time.Second, fmt.Sprintf(`(async () => {
	const {Baton} = await import('/client/index.js');
	const b = new Baton({nodes: %s, requestTimeoutMs: 3000});
	const seqs = [];
	for (let i = 0; i < %d; i++) seqs.push((await b.publish(%q, {id: 'page', value: {i}}))[0].seq);
	return seqs;
})()`, nodes, n, topic))
	if err != nil {
		t.Fatalf("publish from the page: %v", err)
	}
	if len(seqs) != n {
		t.Fatalf("the page got %d receipts, want %d", len(seqs), n)
	}
	if got := forwarded() - fwd; got > 1 {
		t.Errorf("the other nodes forwarded %v of the page's %d publishes, want at most the first (is Baton-Holder exposed to the page?)", got, n)
	}
}
