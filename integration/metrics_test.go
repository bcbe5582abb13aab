package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/redistest"
)

// scrape reads one metric's value from a Prometheus text answer (-1 if
// absent).
func scrape(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := httpc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestMetricsOfARealNode: a real node counts what it appended and
// published, its lease and its topic's lag, on the API's /metrics and on
// --metrics-listen alike.
func TestMetricsOfARealNode(t *testing.T) {
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	aside := fmt.Sprintf("127.0.0.1:%d", port)
	c := newClusterWith(t, sqliteEngine, 1, testTTL, "", "--metrics-listen", aside)
	cl, err := client.New(c.addrs(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ups []baton.Update
	for i := range 5 {
		ups = append(ups, baton.Update{ID: "k", Value: []byte(strconv.Itoa(i))})
	}
	if _, err := cl.Publish(context.Background(), "m", ups); err != nil {
		t.Fatal(err)
	}
	api := c.nodes[0].URL() + "/metrics"
	poll.True(t, 30*time.Second, "5 items published and no lag", func() bool {
		return scrape(t, api, `baton_items_published_total{topic="m"}`) == 5 && scrape(t, api, `baton_topic_lag_items{topic="m"}`) == 0
	})
	for url, series := range map[string]string{
		api:                            `baton_items_appended_total{topic="m"}`,
		"http://" + aside + "/metrics": `baton_items_appended_total{topic="m"}`,
	} {
		if v := scrape(t, url, series); v != 5 {
			t.Errorf("%s %s = %v, want 5", url, series, v)
		}
	}
	if v := scrape(t, api, "baton_lease_acquisitions_total"); v < 1 {
		t.Errorf("lease acquisitions %v", v)
	}
	if v := scrape(t, api, `baton_topic_publishing{topic="m"}`); v != 1 {
		t.Errorf("publishing{m} = %v on the only node", v)
	}
	resp, err := http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `baton_http_request_duration_seconds_count{code="201",method="POST",route="/v1/topics/{topic}/items"}`) {
		t.Errorf("no request metric of the publish in:\n%s", b)
	}
}

// TestReadinessFollowsTheStore: a real node on a real Redis is ready; with
// Redis killed its /readyz answers 503 naming the store (and its metrics
// say the status cannot be read); with Redis back, ready again.
func TestReadinessFollowsTheStore(t *testing.T) {
	r := redistest.Start(t, redistest.Options{KeyspaceEvents: "Ex"})
	c := newClusterWith(t, func(*testing.T) string { return r.URL(0) }, 1, testTTL, "")
	ready := func() (int, string) {
		resp, err := httpc.Get(c.nodes[0].URL() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	poll.True(t, 30*time.Second, "the node ready", func() bool { s, _ := ready(); return s == 200 })
	r.Kill()
	poll.True(t, 30*time.Second, "503 naming the store", func() bool {
		s, body := ready()
		return s == 503 && strings.Contains(body, `"kind":"store"`)
	})
	if v := scrape(t, c.nodes[0].URL()+"/metrics", "baton_status_up"); v != 0 {
		t.Errorf("baton_status_up = %v with the store down", v)
	}
	r.Restart()
	poll.True(t, 60*time.Second, "ready again", func() bool { s, _ := ready(); return s == 200 })
}
