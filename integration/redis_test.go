package integration

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/redistest"
)

// The hand-over tests run on Redis too: each test starts its own
// redis-server on a free port (skipped without one, failed under CI).
func init() {
	engines["redis"] = func(t *testing.T) string {
		return redistest.Start(t, redistest.Options{KeyspaceEvents: "Ex"}).URL(0)
	}
}

// TestSentinelFailoverEndToEnd runs three real nodes on Redis behind
// Sentinel (one master, one replica, three sentinels, writes acknowledged
// by the replica) and fails the master over while a source publishes and a
// terminal on every node reads. Every acknowledged item must reach every
// terminal once and in order, publishing must carry on on the new master
// under a new epoch, and the lease live at the failover must have a release
// record (it lapses while the new master has no replica in sync, or, if it
// outlives the switch, it ends as "failed" when the nodes see the new
// replication id).
func TestSentinelFailoverEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis processes and three nodes")
	}
	g := redistest.StartSentinel(t, redistest.SentinelOptions{KeyspaceEvents: "Ex"})
	c := newCluster(t, func(*testing.T) string {
		return g.URL(0) + "?wait_replicas=1&wait_timeout=200ms"
	}, 3, testTTL)
	src, terms, follow := c.run("sentinel", 200)
	progress(t, src, 100)
	_, before := c.holder("sentinel")

	old := g.Master.Addr
	newMaster := g.Failover()
	t.Logf("failed over from %s to %s", old, newMaster)
	// Publishing carries on through the new master, once it has a replica
	// in sync to acknowledge writes: Sentinel turns the old master into
	// one after about 10 s, longer on a loaded machine.
	progressWithin(t, src, 200, 90*time.Second)
	_, after := c.holder("sentinel")
	if after.Epoch <= before.Epoch {
		t.Errorf("epoch after the failover %d, before %d: want a new lease", after.Epoch, before.Epoch)
	}
	rep := c.finish(src, terms, follow)
	var ended bool
	for _, h := range c.handovers("sentinel") {
		if h.Epoch == before.Epoch {
			ended = true
			if h.Reason != baton.ReasonExpired && h.Reason != baton.ReasonFailed {
				t.Errorf("the lease live at the failover ended as %q: %+v", h.Reason, h)
			}
		}
	}
	if !ended {
		t.Errorf("no release record for epoch %d, live at the failover", before.Epoch)
	}
	t.Logf("acked %d, delivered %v, source retries %d", rep.Acked, rep.Delivered, src.Retries())
}

// TestServeWaitsForStore: `baton serve --store-wait` started before its
// Redis retries (and says so in its log) until the server is up, then
// serves; without it, the same start fails at once with one clear error.
func TestServeWaitsForStore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	url := srv.URL(0)
	srv.Kill()
	dir := t.TempDir()

	start := time.Now()
	if n, err := proc.Start(t.Context(), batonBin, dir, "nowait", url); err == nil {
		n.Kill()
		t.Fatal("serve without --store-wait started with no Redis")
	}
	t.Logf("without --store-wait: failed after %v", time.Since(start).Round(time.Millisecond))
	if b, _ := os.ReadFile(filepath.Join(dir, "nowait.log")); !bytes.Contains(b, []byte("cannot connect")) {
		t.Errorf("log does not name the problem:\n%s", tail(b, 2048))
	}

	type started struct {
		n   *proc.Node
		err error
	}
	ch := make(chan started, 1)
	go func() {
		n, err := proc.Start(t.Context(), batonBin, dir, "waiter", url, "--store-wait", "60s")
		ch <- started{n, err}
	}()
	poll.True(t, 20*time.Second, "the node to retry", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "waiter.log"))
		return bytes.Contains(b, []byte("store unavailable: retrying"))
	})
	srv.Restart()
	r := <-ch
	if r.err != nil {
		t.Fatalf("serve --store-wait after Redis came up: %v", r.err)
	}
	defer r.n.Kill()
	resp, err := httpc.Get("http://" + r.n.Addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
}
