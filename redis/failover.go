package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

var scriptFailover = newScript("failover")

// watchReplication notices a change of the master's replication id: a
// Sentinel or Cluster failover, or a restart of the server. Either may have
// lost acknowledged writes that had not reached a replica or the disk. The
// store then ends every live lease (a "failed" release record), so each
// topic is re-acquired under a new epoch and its publisher resumes from the
// cursor as the new master has it, and checks that the cursor still matches
// the queue. The script is idempotent per replication id, so the first node
// to notice acts and the others do nothing. On Redis Cluster each bucket is
// watched through the master of its slot, and a change acts on the topics
// of the buckets that master serves only.
func (s *Store) watchReplication(ctx context.Context) {
	t := time.NewTicker(s.opts.ReplicationCheck)
	defer t.Stop()
	last := map[string]string{} // bucket tag ("" when not Cluster) -> replication id acted on
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids := s.replicationIDs(ctx)
		var moved []string
		changed := false
		for tag, id := range ids {
			if id != "" && id != last[tag] {
				moved = append(moved, tag)
				changed = changed || last[tag] != ""
			}
		}
		if len(moved) == 0 {
			continue
		}
		if err := s.afterReplicationChange(ctx, ids, moved, changed); err != nil {
			s.log.Warn("redis: re-validating after a replication change", "err", err)
			continue
		}
		for _, tag := range moved {
			last[tag] = ids[tag]
		}
	}
}

// replicationIDs reads the master's replication id, or on Redis Cluster
// that of each bucket's master (one INFO per master). A bucket whose master
// cannot be read is left out: it is checked again at the next tick.
func (s *Store) replicationIDs(ctx context.Context) map[string]string {
	cc, ok := s.rdb.(*goredis.ClusterClient)
	if !ok {
		info, err := s.rdb.Info(ctx, "replication").Result()
		if err != nil {
			return nil // unreachable: the callers see it; check again later
		}
		return map[string]string{"": infoField(info, "master_replid")}
	}
	ids := map[string]string{}
	byAddr := map[string]string{}
	for _, tag := range s.k.buckets {
		c, err := cc.MasterForKey(ctx, s.k.copyLease(tag, ""))
		if err != nil {
			continue
		}
		addr := c.Options().Addr
		id, seen := byAddr[addr]
		if !seen {
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				// The slot map may be stale after a failover.
				cc.ReloadState(ctx)
				continue
			}
			id = infoField(info, "master_replid")
			byAddr[addr] = id
		}
		ids[tag] = id
	}
	return ids
}

// afterReplicationChange runs lua/failover.lua on every topic of the
// buckets in moved (every topic when not on Cluster) with its master's
// replication id.
func (s *Store) afterReplicationChange(ctx context.Context, ids map[string]string, moved []string, changed bool) error {
	topics, err := s.rdb.SMembers(ctx, s.k.topics()).Result()
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, tag := range moved {
		wanted[tag] = true
	}
	for _, t := range topics {
		tag := ""
		if s.k.cluster() {
			tag = s.k.bucket(t)
		}
		if !wanted[tag] {
			continue
		}
		keys := []string{s.k.lock(t), s.k.cursor(t), s.k.releases(t), s.k.meta(t), s.k.queue(t)}
		r, err := s.run(ctx, scriptFailover, false, keys, t, s.k.events(t), ids[tag], s.k.space(t))
		if err != nil {
			return err
		}
		if replyStr(r, 0) != "ok" {
			continue
		}
		s.log.Warn("redis: master replication id changed: lease ended, cursor checked",
			"topic", t, "lease_ended", replyInt(r, 1) == 1)
		if p := replyStr(r, 2); p != "" {
			s.log.Error("redis: cursor does not match the queue after a replication change", "topic", t, "problem", p)
		}
	}
	if changed {
		// What the messages said before the change may not hold now
		// (recent.go, heardlock.go).
		s.recent.reset()
		s.locks.Reset()
		s.sig.NotifyAll()
	}
	return nil
}
