package integration

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
)

// TestReadinessFollowsTheNotifications: a real node on a real Redis whose
// pub/sub connection is killed again and again subscribes again each time
// and stays ready; once Redis refuses it SUBSCRIBE (an ACL), so that the
// connection is lost and not re-established, /readyz answers 503 naming
// the notifications while the store still answers, and the metrics count
// the problem; with SUBSCRIBE allowed again, ready again. Both changes are
// logged once. A real Prometheus evaluating deploy/prometheus/alerts.yml
// fires BatonNodeProblem meanwhile.
func TestReadinessFollowsTheNotifications(t *testing.T) {
	r := redistest.Start(t, redistest.Options{KeyspaceEvents: "Ex"})
	c := newClusterWith(t, func(*testing.T) string { return r.URL(0) }, 1, testTTL, "")
	n := c.nodes[0]
	p := startPrometheus(t, []string{metricsTarget(n)})
	ctx := context.Background()
	ready := func() (int, string) {
		resp, err := httpc.Get(n.URL() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	redis := func(args ...any) any {
		t.Helper()
		v, err := r.Do(ctx, args...)
		if err != nil {
			t.Fatalf("redis %v: %v", args, err)
		}
		return v
	}
	subscribed := func() bool {
		s, _ := redis("CLIENT", "LIST", "TYPE", "pubsub").(string)
		return strings.Contains(s, "cmd=")
	}
	poll.True(t, 30*time.Second, "the node ready", func() bool { s, _ := ready(); return s == 200 })
	for range 5 {
		// The node's one pub/sub connection may be between a reconnect's
		// steps when the kill comes (seen listed, then replaced): kill
		// until one is killed. Two at once would be a leak.
		poll.True(t, 30*time.Second, "the node's pub/sub connection killed", func() bool {
			if !subscribed() {
				return false
			}
			k, _ := redis("CLIENT", "KILL", "TYPE", "pubsub").(int64)
			if k > 1 {
				t.Fatalf("killed %d pub/sub connections, want 1", k)
			}
			return k == 1
		})
	}
	poll.True(t, 30*time.Second, "the node subscribed again", subscribed)
	poll.True(t, 30*time.Second, "ready after the kills", func() bool { s, _ := ready(); return s == 200 })

	redis("ACL", "SETUSER", "default", "-subscribe", "-psubscribe")
	redis("CLIENT", "KILL", "TYPE", "pubsub")
	poll.True(t, 30*time.Second, "503 naming the notifications", func() bool {
		s, body := ready()
		return s == 503 && strings.Contains(body, `"kind":"notifications"`) && !strings.Contains(body, `"kind":"store"`)
	})
	if v := scrape(t, n.URL()+"/metrics", `baton_node_problems{kind="notifications"}`); v != 1 {
		t.Errorf(`baton_node_problems{kind="notifications"} = %v while lost`, v)
	}
	p.waitFiring("BatonNodeProblem", map[string]string{"kind": "notifications"})
	redis("ACL", "SETUSER", "default", "+subscribe", "+psubscribe")
	poll.True(t, 60*time.Second, "ready again", func() bool { s, _ := ready(); return s == 200 })
	if v := scrape(t, n.URL()+"/metrics", `baton_node_problems{kind="notifications"}`); v != 0 {
		t.Errorf(`baton_node_problems{kind="notifications"} = %v once back`, v)
	}
	n.Stop(testTTL)
	log, err := os.ReadFile(n.Log())
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]int{"store change notifications lost": 1, "store change notifications back": 1} {
		if got := strings.Count(string(log), line); got != want {
			t.Errorf("%q logged %d times, want %d", line, got, want)
		}
	}
}
