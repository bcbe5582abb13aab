package integration

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/browser"
	"github.com/baton-pub/baton/internal/poll"
)

// TestDashboardShowsAHandover opens a node's dashboard (/ui/) in headless
// Chromium while a source publishes to a 3-node cluster: it shows the
// three nodes and the topic with its holder, and after the holder is
// SIGKILLed the hand-over appears on its timeline as "expired", all with
// no error in the page.
func TestDashboardShowsAHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and three nodes")
	}
	ctx := browser.Start(t)
	c := newCluster(t, sqliteEngine, 3, testTTL)
	src, terms, follow := c.run("dash", 100)
	progress(t, src, 50)
	holder, lease := c.holder("dash")
	var page string
	for _, n := range c.nodes {
		if n != holder {
			page = n.URL() + "/ui/"
			break
		}
	}
	if err := browser.Navigate(ctx, page); err != nil {
		t.Fatal(err)
	}
	eval := func(js string) string {
		v, err := browser.Eval[string](ctx, 5*time.Second, js)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	poll.True(t, 30*time.Second, "three nodes and the topic's holder on the page", func() bool {
		return eval(`String(document.querySelectorAll("#nodes tbody tr").length)`) == "3" &&
			eval(`(document.querySelector('#topics tr[data-topic="dash"] td:nth-child(2)') || {}).textContent || ""`) == lease.Holder
	})
	c.watched(holder)
	holder.Kill()
	poll.True(t, 30*time.Second, "the hand-over on the timeline", func() bool {
		return eval(`String(document.querySelectorAll('#timeline li[data-topic="dash"][data-reason="crashed"][data-epoch="`+
			itoa(lease.Epoch)+`"]').length)`) == "1"
	})
	if errs := eval(`JSON.stringify(window.batonErrors)`); errs != "[]" {
		t.Errorf("errors in the page: %s", errs)
	}
	t.Logf("timeline: %s", eval(`document.getElementById("timeline").innerText`))
	// BATON_SCREENSHOT=docs/img/dashboard.png saves the picture of the README.
	if path := os.Getenv("BATON_SCREENSHOT"); path != "" {
		if err := browser.Screenshot(ctx, 1100, path); err != nil {
			t.Error(err)
		}
	}
	rep := c.finish(src, terms, follow)
	if !rep.OK() {
		t.Errorf("checker: %+v", rep)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
