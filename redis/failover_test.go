package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// TestReplicationChangeEndsLeases: a restart changes the server's
// replication id (acknowledged writes may have been lost). The store ends
// the live lease with a "failed" record, so the old holder is fenced and
// the topic is re-acquired under a new epoch.
func TestReplicationChangeEndsLeases(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	s, err := redis.Open(ctx, srv.URL(0), redis.Options{ReplicationCheck: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage("1")})
	if _, err := s.Append(ctx, "t", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	lease := acquire(t, s, "t", "a", time.Minute)
	// Let the store see the first replication id, then restart the server.
	poll.True(t, 10*time.Second, "the replication id recorded", func() bool {
		v, _ := srv.Client().HGet(ctx, "baton:{t}:lock", "replid").Result()
		return v != ""
	})
	srv.Restart()
	poll.Until(t, 20*time.Second, "the lease to end after the restart", func() error {
		st, err := s.Lock(ctx, "t")
		if err == nil && st.Held {
			err = fmt.Errorf("lease still live: %+v", st)
		}
		return err
	})
	items, _ := s.Items(ctx, "t", 0, 10)
	_, err = s.Commit(ctx, baton.Commit{Topic: "t", Epoch: lease.Epoch, Holder: "a", Items: items[:1], At: time.Now()})
	if !errors.Is(err, baton.ErrFenced) {
		t.Fatalf("commit under the old lease: %v, want fenced", err)
	}
	hs, _ := s.Handovers(ctx, "t", 10)
	if len(hs) != 1 || hs[0].Reason != baton.ReasonFailed || hs[0].Epoch != lease.Epoch {
		t.Fatalf("records: %+v", hs)
	}
	if l2 := acquire(t, s, "t", "b", time.Minute); l2.Epoch != lease.Epoch+1 {
		t.Fatalf("re-acquire: %+v, want epoch %d", l2, lease.Epoch+1)
	}
}
