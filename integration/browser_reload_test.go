package integration

import (
	"fmt"
	"testing"

	"github.com/baton-pub/baton/internal/browser"
)

// TestBrowserReloadGetsItsStream: a page of another origin follows a topic
// with EventSource on a node that allows each client one stream
// (--client-streams 1), and is reloaded: the node sees the old page's
// connection close at once (not at its next heartbeat, five minutes here), so
// each new page gets its stream, as an app retrying a failed EventSource
// every 100 ms would, within a second.
func TestBrowserReloadGetsItsStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	page := pageServer(t)
	c := newClusterWith(t, sqliteEngine, 1, testTTL, "", "--client-streams", "1", "--cors-origins", page.URL, "--sse-heartbeat", "5m")
	ctx := browser.Start(t)
	open := fmt.Sprintf(`new Promise(resolve => {
	let tries = 0;
	function open() {
		const es = new EventSource(%q);
		es.onopen = () => resolve('open after ' + tries + ' failed tries');
		es.onerror = () => { es.close(); if (++tries >= 10) resolve('refused ' + tries + ' times'); else setTimeout(open, 100); };
	}
	open();
})`, c.nodes[0].URL()+"/v1/topics/reload/events")
	for i := range 4 { // the first page, then three reloads
		if err := browser.Navigate(ctx, page.URL); err != nil {
			t.Fatal(err)
		}
		got, err := browser.Eval[string](ctx, evalWait, open)
		if err != nil {
			t.Fatal(err)
		}
		if got[:4] != "open" {
			t.Fatalf("page %d: the stream was %s (the old page's still counted)", i+1, got)
		}
		t.Logf("page %d: %s", i+1, got)
	}
}
