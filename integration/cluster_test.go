package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
)

// Redis Cluster end to end (redis/doc.go, "Cluster"): three real nodes on a
// cluster of three masters with a replica each, writes acknowledged by a
// replica (wait_replicas=1).

func clusterStore(t *testing.T) (*redistest.Cluster, engine) {
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: 1})
	return rc, func(*testing.T) string { return rc.URL() + "?wait_replicas=1&wait_timeout=200ms" }
}

// TestClusterKillNode: SIGKILL the node that publishes a busy topic while
// it holds several others. Every topic of the killed node is handed over
// with one expired record, and every acknowledged item reaches every
// terminal once, in order.
func TestClusterKillNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis processes and three nodes")
	}
	_, eng := clusterStore(t)
	c := newCluster(t, eng, 3, testTTL)
	topics := publishEach(t, c, "desk", 12, "first")
	src, terms, follow := c.run("orders", 200)
	progress(t, src, 100)
	c.publishedUpTo(topics, 1)
	victim, lease := c.holder("orders")
	var orphans []string
	for _, topic := range topics {
		if c.lock(topic).Lease.Holder == victim.Name {
			orphans = append(orphans, topic)
		}
	}
	c.watched(victim)
	victim.Kill()
	progress(t, src, 100)
	next, l2 := c.holder("orders", victim)
	if l2.Epoch <= lease.Epoch {
		t.Fatalf("after the kill: %s holds epoch %d, was %s at %d", next.Name, l2.Epoch, victim.Name, lease.Epoch)
	}
	publishEach(t, c, "desk", 12, "second")
	c.publishedUpTo(topics, 2)
	for _, topic := range append(orphans, "orders") {
		hs := c.handovers(topic)
		i := slices.IndexFunc(hs, func(h baton.ReleaseRecord) bool { return h.Holder == victim.Name })
		// Crashed: a survivor's peer watch found the process gone and
		// ended its node lease, copies in every bucket included.
		if i < 0 || hs[i].Reason != baton.ReasonCrashed || hs[i].Successor == "" {
			t.Errorf("%s after the SIGKILL of its holder: records %+v", topic, hs)
		}
	}
	// No lease of a live node lapsed (the buckets' copies of the node
	// leases were renewed with them), nor was a live node found gone.
	for _, topic := range append(topics, "orders") {
		for _, h := range c.handovers(topic) {
			if (h.Reason == baton.ReasonExpired || h.Reason == baton.ReasonCrashed) && h.Holder != victim.Name {
				t.Errorf("%s: a lease of live node %s ended as %s: %+v", topic, h.Holder, h.Reason, h)
			}
		}
	}
	rep := c.finish(src, terms, follow)
	t.Logf("%d other topics of the killed node handed over; acked %d, delivered %v", len(orphans), rep.Acked, rep.Delivered)
}

// TestClusterMasterFailover fails every master of the cluster over to its
// replica in turn (CLUSTER FAILOVER), then kills every new master in turn
// (SIGKILL: its replica takes over, and the killed one comes back as a
// replica), while a source publishes to one topic, terminals read it, and
// several other topics are held: publishing carries on, and every
// acknowledged item reaches every terminal once, in order.
func TestClusterMasterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis processes and three nodes")
	}
	rc, eng := clusterStore(t)
	c := newCluster(t, eng, 3, testTTL)
	topics := publishEach(t, c, "book", 6, "first")
	src, terms, follow := c.run("fills", 200)
	progress(t, src, 100)
	for _, replica := range replicas(t, rc) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := replica.Do(ctx, "CLUSTER", "FAILOVER")
		cancel()
		if err != nil {
			t.Fatalf("CLUSTER FAILOVER on %s: %v", replica.Addr, err)
		}
		poll.Until(t, 30*time.Second, replica.Addr+" to become a master", func() error {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			v, err := replica.Do(ctx, "INFO", "replication")
			if s, _ := v.(string); err == nil && !strings.Contains(s, "role:master") {
				err = fmt.Errorf("not yet: %.40s", s)
			}
			return err
		})
		rc.WaitReady()
		t.Logf("failed over to %s", replica.Addr)
		progressWithin(t, src, 100, 60*time.Second)
	}
	for _, master := range masters(t, rc) {
		master.Kill()
		rc.WaitReady() // the running nodes: its replica took over
		master.Restart()
		rc.WaitReady() // and it is a replica in sync
		t.Logf("killed master %s, now a replica", master.Addr)
		progressWithin(t, src, 100, 60*time.Second)
	}
	publishEach(t, c, "book", 6, "second")
	c.publishedUpTo(topics, 2)
	rep := c.finish(src, terms, follow)
	t.Logf("acked %d, delivered %v, source retries %d", rep.Acked, rep.Delivered, src.Retries())
}

// publishEach appends one item (msg id msgID) to each of n topics
// PREFIX.00..., through the first live node, and returns the topics. A
// node may answer 503 while a master fails over, or while a replica is
// slow to acknowledge (wait_replicas): a client retries, and the msg id
// makes a repeat a duplicate.
func publishEach(t *testing.T, c *cluster, prefix string, n int, msgID string) []string {
	t.Helper()
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("%s.%02d", prefix, i)
		poll.Until(t, 30*time.Second, "an append to "+topics[i], func() error {
			for _, nd := range c.nodes {
				if !nd.Alive() {
					continue
				}
				resp, err := httpc.Post(nd.URL()+"/v1/topics/"+topics[i]+"/items", "application/json",
					strings.NewReader(`{"id":"k","value":1,"msg_id":"`+msgID+`"}`))
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != 201 && resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
			return fmt.Errorf("no live node")
		})
	}
	return topics
}

// replicas are the cluster's replicas now, masters its masters.
func replicas(t *testing.T, rc *redistest.Cluster) []*redistest.Server {
	t.Helper()
	return withRole(t, rc, "slave")
}

func masters(t *testing.T, rc *redistest.Cluster) []*redistest.Server {
	t.Helper()
	return withRole(t, rc, "master")
}

func withRole(t *testing.T, rc *redistest.Cluster, role string) []*redistest.Server {
	t.Helper()
	var out []*redistest.Server
	for _, n := range rc.Nodes {
		v, err := n.Do(t.Context(), "INFO", "replication")
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := v.(string); strings.Contains(s, "role:"+role) {
			out = append(out, n)
		}
	}
	if len(out) != 3 {
		t.Fatalf("%d nodes with role %s, want 3", len(out), role)
	}
	return out
}
