package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/storetest"
)

// open opens a Store on url and closes it when the test ends.
func open(t *testing.T, url string, opts redis.Options) *redis.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// acquire takes topic's lock for node under a new node lease of ttl.
func acquire(t testing.TB, s *redis.Store, topic, node string, ttl time.Duration) baton.Lease {
	t.Helper()
	nl, err := s.AcquireNode(t.Context(), node, ttl)
	if err != nil {
		t.Fatalf("AcquireNode(%s): %v", node, err)
	}
	l, err := s.Acquire(t.Context(), topic, nl)
	if err != nil {
		t.Fatalf("Acquire(%s) by %s: %v", topic, node, err)
	}
	return l
}

// nodeOf is the node lease a topic lease is held under.
func nodeOf(l baton.Lease) baton.NodeLease {
	return baton.NodeLease{Node: l.Holder, Epoch: l.NodeEpoch}
}

// TestConformance runs the store conformance suite against a real
// redis-server that the test starts: every subtest gets its own handle on
// one shared database (the suite's names are unique), and the Shared
// subtests get two handles, as two processes would have.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	url := srv.URL(0)
	storetest.Run(t,
		func(t *testing.T) baton.Store { return open(t, url, redis.Options{}) },
		storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
			return open(t, url, redis.Options{}), open(t, url, redis.Options{})
		}),
		storetest.Parallel(),
	)
}

// TestConformancePrefixAndDB runs the suite with a non-default key prefix
// and database, with keyspace notifications left as the server has them
// (off): nothing may depend on either.
func TestConformancePrefixAndDB(t *testing.T) {
	if testing.Short() {
		t.Skip("second run of the suite")
	}
	srv := redistest.Start(t, redistest.Options{})
	url := srv.URL(3) + "?prefix=other:ns"
	opts := redis.Options{KeepServerConfig: true}
	storetest.Run(t,
		func(t *testing.T) baton.Store { return open(t, url, opts) },
		storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
			return open(t, url, opts), open(t, url, opts)
		}),
		storetest.Parallel(),
	)
}
