package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-pub/baton"
)

// Topic lifecycle (baton.Lifecycle; docs/design.md, "Topic lifecycle").
// A deleted topic's tombstone is in its meta hash (lua/deletetopic.lua):
// Append brings the topic back (lua/append.lua), Acquire refuses it
// (lua/acquire.lua). The topics set is a global key: the delete script
// and listtopic reach it beside the topic's keys, as acquire.lua reaches
// the node lease's.

// retention is a hash items, age_ns: the topic's baton.Retention.
func (k keyspace) retention(t string) string { return k.topic(t, "retention") }

var (
	scriptDeleteTopic = newScript("deletetopic")
	scriptRetention   = newScript("retention")
	scriptListTopic   = newScript("listtopic")
)

func init() {
	allScripts = append(allScripts, scriptDeleteTopic, scriptRetention, scriptListTopic)
}

// deleteKeys are the KEYS of lua/deletetopic.lua.
func (k keyspace) deleteKeys(t string) []string {
	return []string{k.lock(t), k.cursor(t), k.releases(t), k.queue(t), k.msgids(t), k.hashes(t), k.meta(t),
		k.ledger(t), k.checkpoints(t), k.cpsizes(t), k.retention(t), k.topics(), k.snapRows(t), k.snapIDs(t)}
}

// DeleteTopic implements baton.Lifecycle: one script.
func (s *Store) DeleteTopic(ctx context.Context, topic string, opts baton.DeleteOptions) (baton.Deletion, error) {
	if err := baton.ValidateDelete(topic); err != nil {
		return baton.Deletion{}, fmt.Errorf("delete topic: %w", err)
	}
	drop := "0"
	if opts.Ledger {
		drop = "1"
	}
	keys, unlist := s.k.deleteKeys(topic), "1"
	if s.k.cluster() {
		// One slot per script: the topics set is taken care of below.
		keys[11], unlist = s.k.meta(topic), "0"
	}
	r, err := s.run(ctx, scriptDeleteTopic, true, keys,
		topic, s.k.events(topic), s.k.topicsChannel(), s.k.space(topic), drop, unlist)
	if err != nil {
		return baton.Deletion{}, fmt.Errorf("delete topic %s: %w", topic, err)
	}
	if replyStr(r, 0) != "ok" {
		return baton.Deletion{}, fmt.Errorf("delete topic %s: %w", topic, baton.ErrNotFound)
	}
	if opts.Ledger {
		// The re-anchors belong to the ledger that went (apart from the
		// script: the list is added by reanchors.go, after it was written).
		if err := s.rdb.Del(ctx, s.k.reanchors(topic)).Err(); err != nil {
			return baton.Deletion{}, fmt.Errorf("delete topic %s: re-anchors: %w", topic, s.mapErr(err))
		}
	}
	if s.k.cluster() {
		if err := s.unlistDeleted(ctx, topic); err != nil {
			return baton.Deletion{}, fmt.Errorf("delete topic %s: %w", topic, err)
		}
	}
	s.deleted(topic)
	return baton.Deletion{Topic: topic, Items: int(replyInt(r, 1)), Unpublished: int(replyInt(r, 2)),
		Epoch: replyUint(r, 3), LedgerSize: replyUint(r, 4), LedgerDeleted: opts.Ledger}, nil
}

// deleted forgets that topic is registered (an Append registers it again)
// and wakes its subscribers: on the deleting Store at once, on the others
// when the "deleted" event reaches them (dispatch).
func (s *Store) deleted(topic string) {
	s.known.Delete(topic)
	s.recent.unknown(topic)
	s.locks.Forget(topic)
	s.sig.Notify(topic, baton.SignalTopic|baton.SignalLock|baton.SignalAppend|baton.SignalCommit)
}

// listAcquired lists a topic an Acquire just ran on, unless it is
// deleted, and announces it if new: unlike register (Append's), it runs
// after the acquire script and checks the tombstone in the same step, so
// that an elector racing a delete never puts the topic back in the list.
func (s *Store) listAcquired(ctx context.Context, topic string) error {
	if _, ok := s.known.Load(topic); ok {
		return nil
	}
	var added int64
	if s.k.cluster() {
		// The topics set and the tombstone are in two slots: the
		// tombstone is read first, and a delete that lands between the
		// two takes the topic out again (unlistDeleted).
		deleted, err := s.rdb.HExists(ctx, s.k.meta(topic), "deleted").Result()
		if err != nil {
			return fmt.Errorf("list topic %s: %w", topic, s.mapErr(err))
		}
		if deleted {
			return s.unlistDeleted(ctx, topic)
		}
		if added, err = s.rdb.SAdd(ctx, s.k.topics(), topic).Result(); err != nil {
			return fmt.Errorf("list topic %s: %w", topic, s.mapErr(err))
		}
	} else {
		r, err := s.run(ctx, scriptListTopic, false, []string{s.k.topics(), s.k.meta(topic)}, topic)
		if err != nil {
			return fmt.Errorf("list topic %s: %w", topic, err)
		}
		added = replyInt(r, 1)
	}
	if added == 1 {
		if err := s.rdb.Publish(ctx, s.k.topicsChannel(), topic).Err(); err != nil {
			s.log.Warn("announce new topic", "topic", topic, "err", err)
		}
		s.sig.Notify(topic, baton.SignalTopic)
	}
	s.known.Store(topic, struct{}{})
	return nil
}

// revived registers again a topic that an Append brought back from its
// delete: this Store may still have it as registered.
func (s *Store) revived(ctx context.Context, topic string) error {
	s.known.Delete(topic)
	return s.register(ctx, topic)
}

// SetRetention implements baton.Lifecycle.
func (s *Store) SetRetention(ctx context.Context, topic string, rt baton.Retention) error {
	if err := baton.ValidateRetention(topic, rt); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	r, err := s.run(ctx, scriptRetention, true, []string{s.k.retention(topic), s.k.meta(topic), s.k.lock(topic)},
		s.k.events(topic), rt.Items, int64(rt.Age))
	if err != nil {
		return fmt.Errorf("set retention of %s: %w", topic, err)
	}
	if replyStr(r, 0) != "ok" {
		return fmt.Errorf("set retention of %s: %w", topic, baton.ErrNotFound)
	}
	s.sig.Notify(topic, baton.SignalLock)
	return nil
}

// Retention implements baton.Lifecycle.
func (s *Store) Retention(ctx context.Context, topic string) (baton.Retention, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.Retention{}, fmt.Errorf("retention: %w", err)
	}
	if err := s.errClosed(); err != nil {
		return baton.Retention{}, err
	}
	pipe := s.rdb.Pipeline()
	ex := pipe.SIsMember(ctx, s.k.topics(), topic)
	rc := pipe.HMGet(ctx, s.k.retention(topic), "items", "age_ns")
	if err := s.send(ctx, pipe); err != nil {
		return baton.Retention{}, fmt.Errorf("read retention of %s: %w", topic, s.mapErr(err))
	}
	if !ex.Val() {
		return baton.Retention{}, fmt.Errorf("retention of %s: %w", topic, baton.ErrNotFound)
	}
	v := rc.Val()
	items, _ := strconv.ParseInt(fieldStr(v[0]), 10, 64)
	age, _ := strconv.ParseInt(fieldStr(v[1]), 10, 64)
	return baton.Retention{Items: items, Age: time.Duration(age)}, nil
}

// unlistDeleted takes a deleted topic out of the topics set on Redis
// Cluster, where the set is in another slot than the topic's tombstone:
// then it reads the tombstone again, and lists the topic once more if an
// Append brought it back in between.
func (s *Store) unlistDeleted(ctx context.Context, topic string) error {
	if err := s.rdb.SRem(ctx, s.k.topics(), topic).Err(); err != nil {
		return fmt.Errorf("unlist %s: %w", topic, s.mapErr(err))
	}
	deleted, err := s.rdb.HExists(ctx, s.k.meta(topic), "deleted").Result()
	if err != nil {
		return fmt.Errorf("unlist %s: %w", topic, s.mapErr(err))
	}
	if !deleted {
		if err := s.rdb.SAdd(ctx, s.k.topics(), topic).Err(); err != nil {
			return fmt.Errorf("unlist %s: %w", topic, s.mapErr(err))
		}
	}
	return nil
}
