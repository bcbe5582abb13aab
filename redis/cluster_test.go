package redis_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/storetest"
)

// Redis Cluster (doc.go, "Cluster"): the conformance suite on a real
// cluster of three masters with a replica each, and what is particular to
// Cluster: the buckets' copies of node leases and WAIT on the slot's master.

func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: 1})
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
