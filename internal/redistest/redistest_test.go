package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/redistest"
)

func TestStartRestart(t *testing.T) {
	s := redistest.Start(t, redistest.Options{Password: "pw", KeyspaceEvents: "Ex"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Do(ctx, "CONFIG", "GET", "notify-keyspace-events")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("notify-keyspace-events: %v", got)
	s.Restart()
	v, err := s.Do(ctx, "GET", "k")
	if err != nil || v != "v" {
		t.Fatalf("after restart GET k = %v, %v; want v (append-only file reloaded)", v, err)
	}
	s.Pause()
	s.Resume()
	if _, err := s.Do(ctx, "PING"); err != nil {
		t.Fatal(err)
	}
}

func TestSentinelGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes and fails over")
	}
	g := redistest.StartSentinel(t, redistest.SentinelOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := g.MasterAddr(ctx)
	if err != nil || m != g.Master.Addr {
		t.Fatalf("master = %q, %v; want %s", m, err, g.Master.Addr)
	}
	nm := g.Failover()
	if nm != g.Replica.Addr {
		t.Fatalf("after failover master = %s, want the replica %s", nm, g.Replica.Addr)
	}
	t.Logf("sentinel URL %s", g.URL(0))
}
