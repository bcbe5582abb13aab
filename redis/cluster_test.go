package redis_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/storetest"
)

// Redis Cluster (doc.go, "Cluster"): the conformance suite on a real
// cluster of three masters with a replica each, and what is particular to
// Cluster: the buckets' copies of node leases and WAIT on the slot's master.

func TestClusterConformance(t *testing.T) {
	// No master fails here: a long node timeout keeps a replica from
	// taking over (and the cluster from answering CLUSTERDOWN meanwhile)
	// when a loaded machine leaves a master unanswered for a second.
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: 1, NodeTimeout: 10 * time.Second})
	url := c.URL()
	storetest.Run(t,
		func(t *testing.T) baton.Store { return open(t, url, redis.Options{}) },
		storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
			return open(t, url, redis.Options{}), open(t, url, redis.Options{})
		}),
		storetest.Parallel(),
	)
}

// TestClusterBuckets: the topics of one deployment spread over every master,
// and a store opened with another number of buckets is refused.
func TestClusterBuckets(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	s := open(t, c.URL()+"?buckets=6&prefix=bk", redis.Options{})
	ctx := t.Context()
	masters := map[string]bool{}
	for i := range 60 {
		topic := "t" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if _, err := s.Append(ctx, topic, updates(t, 1)); err != nil {
			t.Fatal(err)
		}
		m, _, err := c.MasterOf(ctx, redis.LockKey(s, topic))
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Errorf("60 topics in 6 buckets reach %d masters, want 3", len(masters))
	}
	_, err := redis.Open(ctx, c.URL()+"?buckets=7&prefix=bk", redis.Options{})
	if !errors.Is(err, baton.ErrInvalid) || !strings.Contains(err.Error(), "buckets=6") {
		t.Fatalf("Open with another number of buckets: %v, want ErrInvalid naming buckets=6", err)
	}
}

// TestClusterWaitOnSlotMaster: with wait_replicas=1, WAIT goes to the
// master of the script's slot. With that master's replica paused an
// append must fail as unavailable, every time (a WAIT sent to another
// master would count that master's healthy replica); once it resumes,
// appends are acknowledged again.
func TestClusterWaitOnSlotMaster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: 1})
	s := open(t, c.URL()+"?wait_replicas=1&wait_timeout=100ms&prefix=wt", redis.Options{})
	ctx := t.Context()
	const topic = "w"
	// A replica just started may take more than wait_timeout to answer.
	poll.Until(t, 10*time.Second, "a first acknowledged append", func() error {
		_, err := s.Append(ctx, topic, updates(t, 1))
		return err
	})
	_, replica, err := c.MasterOf(ctx, redis.LockKey(s, topic))
	if err != nil || replica == nil {
		t.Fatalf("the replica of %s's master: %v, %v", topic, replica, err)
	}
	replica.Pause()
	for i := range 6 {
		if _, err := s.Append(ctx, topic, updates(t, 1)); !errors.Is(err, baton.ErrUnavailable) {
			replica.Resume()
			t.Fatalf("append %d with the slot master's replica paused: %v, want ErrUnavailable", i, err)
		}
	}
	replica.Resume()
	poll.Until(t, 10*time.Second, "an acknowledged append", func() error {
		_, err := s.Append(ctx, topic, updates(t, 1))
		return err
	})
}

// TestClusterAcquireCopiesNodeLease: a bucket that missed the push of a
// node lease (its copy is gone here) gets it at the first Acquire there,
// from {_nodes}, as long as the node lease is live; once it ended, the
// Acquire is refused as lost.
func TestClusterAcquireCopiesNodeLease(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	s := open(t, c.URL()+"?prefix=cp", redis.Options{})
	ctx := t.Context()
	nl, err := s.AcquireNode(ctx, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client().Del(ctx, redis.CopyKey(s, "a", "n1")).Err(); err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(ctx, "a", nl)
	if err != nil || l.NodeEpoch != nl.Epoch || !l.ExpiresAt.Equal(nl.ExpiresAt) {
		t.Fatalf("Acquire in a bucket without a copy: %+v, %v; want held until %v", l, err, nl.ExpiresAt)
	}
	if _, err := s.ReleaseNode(ctx, nl, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	if err := s.Client().Del(ctx, redis.CopyKey(s, "b", "n1")).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "b", nl); !errors.Is(err, baton.ErrLeaseLost) {
		t.Fatalf("Acquire under an ended node lease: %v, want ErrLeaseLost", err)
	}
}

// TestClusterPeersEndCrashed: two peers end a crashed node's lease at once
// (node/peers.go). The first ends it and its copies in every bucket with
// reason crashed; the second is refused (ErrLeaseLost) and leaves the
// copies to the first: every topic's record says crashed, none expired.
func TestClusterPeersEndCrashed(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	url := c.URL() + "?prefix=pc"
	dead, b, d := open(t, url, redis.Options{}), open(t, url, redis.Options{}), open(t, url, redis.Options{})
	ctx := t.Context()
	nl, err := dead.AcquireNode(ctx, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for i := range 48 {
		topic := "crash" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if _, err := dead.Acquire(ctx, topic, nl); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, topic)
	}
	peer := baton.NodeLease{Node: nl.Node, Epoch: nl.Epoch}
	errs := make(chan error, 2)
	for _, s := range []*redis.Store{b, d} {
		go func() {
			_, err := s.ReleaseNode(ctx, peer, baton.ReasonCrashed)
			errs <- err
		}()
	}
	var ok, lost int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, baton.ErrLeaseLost):
			lost++
		default:
			t.Fatalf("ReleaseNode(crashed): %v", err)
		}
	}
	if ok != 1 || lost != 1 {
		t.Fatalf("%d ended and %d refused, want one of each", ok, lost)
	}
	for _, topic := range topics {
		hs, err := b.Handovers(ctx, topic, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 1 || hs[0].Reason != baton.ReasonCrashed || hs[0].Epoch != 1 {
			t.Errorf("%s: records %+v, want one, crashed", topic, hs)
		}
	}
}
