package redis

import (
	"context"
	"time"
)

var scriptFailover = newScript("failover")

// watchReplication notices a change of the master's replication id: a
// Sentinel failover, or a restart of the server. Either may have lost
// acknowledged writes that had not reached a replica or the disk. The store
// then ends every live lease (a "failed" release record), so each topic is
// re-acquired under a new epoch and its publisher resumes from the cursor as
// the new master has it, and checks that the cursor still matches the
// queue. The script is idempotent per replication id, so the first node to
// notice acts and the others do nothing.
func (s *Store) watchReplication(ctx context.Context) {
	t := time.NewTicker(s.opts.ReplicationCheck)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		info, err := s.rdb.Info(ctx, "replication").Result()
		if err != nil {
			continue // unreachable: the callers see it; check again later
		}
		id := infoField(info, "master_replid")
		if id == "" || id == last {
			continue
		}
		if err := s.afterReplicationChange(ctx, id, last != ""); err != nil {
			s.log.Warn("redis: re-validating after a replication change", "err", err)
			continue
		}
		last = id
	}
}

func (s *Store) afterReplicationChange(ctx context.Context, replid string, changed bool) error {
	topics, err := s.rdb.SMembers(ctx, s.k.topics()).Result()
	if err != nil {
		return err
	}
	for _, t := range topics {
		keys := []string{s.k.lock(t), s.k.cursor(t), s.k.releases(t), s.k.meta(t), s.k.queue(t)}
		r, err := s.run(ctx, scriptFailover, false, keys, t, s.k.events(t), replid, s.k.p)
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
		s.sig.NotifyAll()
	}
	return nil
}
