package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/browser"
	"github.com/baton-pub/baton/internal/poll"
)

// TestBrowserMultiTopicResume: a page of another origin follows two topics
// and a pattern on one native EventSource; its node is SIGKILLed and
// started again, and the EventSource reconnects by itself with the last
// event's id (the compact encoding of every topic's position): every item
// of every topic arrives once, in order.
func TestBrowserMultiTopicResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium and two nodes")
	}
	c := newCluster(t, sqliteEngine, 2, testTTL)
	page := pageServer(t)
	ctx := browser.Start(t)
	if err := browser.Navigate(ctx, page.URL); err != nil {
		t.Fatal(err)
	}
	reader := c.nodes[0]
	// The page keeps every item's topic and seq, and the ids it resumed
	// with are the browser's business.
	js := fmt.Sprintf(`(() => {
	const st = window.multi = {got: {}, open: 0, errors: 0};
	const es = new EventSource(%q + '/v1/events?topic=b.one&topic=a.one&topic=p.*');
	es.onopen = () => { st.open++; };
	es.onerror = () => { st.errors++; };
	es.addEventListener('item', e => {
		const d = JSON.parse(e.data);
		(st.got[d.topic] = st.got[d.topic] || []).push(d.seq);
	});
	return true;
})()`, reader.URL())
	if _, err := browser.Eval[bool](ctx, evalWait, js); err != nil {
		t.Fatal(err)
	}
	pub, err := client.New(c.addrs(), client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	publish := func(topic string, n int) {
		for range n {
			rs, err := pub.Publish(context.Background(), topic, []baton.Update{{ID: "k", Value: json.RawMessage(`1`)}})
			if err != nil {
				t.Fatalf("publish %s: %v", topic, err)
			}
			want[topic] = max(want[topic], rs[0].Seq)
		}
	}
	got := func() map[string][]uint64 {
		g, err := browser.Eval[map[string][]uint64](ctx, evalWait, `window.multi.got`)
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return g
	}
	caughtUp := func() error {
		g := got()
		for tp, n := range want {
			if s := g[tp]; len(s) == 0 || s[len(s)-1] < n {
				return fmt.Errorf("%s: page at %v, want %d", tp, s, n)
			}
		}
		return nil
	}
	for _, tp := range []string{"a.one", "b.one", "p.x"} {
		publish(tp, 3)
	}
	poll.Until(t, 30*time.Second, "the page to receive the first items", caughtUp)

	reader.Kill()
	for _, tp := range []string{"a.one", "b.one", "p.x", "p.late"} {
		publish(tp, 2)
	}
	if err := reader.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 60*time.Second, "the page to resume every topic", caughtUp)
	opens, err := browser.Eval[int](ctx, evalWait, `window.multi.open`)
	if err != nil || opens < 2 {
		t.Fatalf("the EventSource opened %d times (%v): it never reconnected", opens, err)
	}
	for tp, seqs := range got() {
		for i, seq := range seqs {
			if seq != uint64(i)+1 {
				t.Fatalf("%s: %v: not every item once, in order", tp, seqs)
			}
		}
		if uint64(len(seqs)) != want[tp] {
			t.Fatalf("%s: %d items, want %d", tp, len(seqs), want[tp])
		}
	}
}
