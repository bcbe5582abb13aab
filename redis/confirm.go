package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// Reads that others act on, confirmed by the replicas.
//
// With wait_replicas, a write the replicas did not acknowledge is on the
// master only: its caller was told ErrUnavailable, but it is there, and a
// failover may drop it. A reader must not act on it: a hub that served an
// unacknowledged commit to a terminal, or a standby that adopted an
// unacknowledged lease, is wrong once the failover drops them (the commit
// is then published again, differently, under an epoch handed out twice:
// split-brain, integration TestSentinelFailoverEndToEnd). So the reads
// that serve terminals, feed the witnesses or decide a hand-over (the
// cursor, published items, leaves, checkpoints, snapshots and the lock) are
// confirmed: the pipeline that reads is followed, on the same connection,
// by a write of a probe key and WAIT. Redis replicates in order, so once the
// replicas have acknowledged the probe they hold everything the master held
// when it ran the reads before it, and a failover to one of them keeps what
// was read. Too few acknowledgements fail the read with ErrUnavailable: the
// reader tries again (docs/reliability.md, "Redis failover").
//
// The probe key carries the topic's hash tag on Redis Cluster (the bucket,
// so the keys stay bounded) and one fixed tag otherwise: a write to it is a
// write to the master the reads went to. Without wait_replicas reads are
// sent as they are (batched, when the store batches).

// probe is the key a confirmed read of topic writes.
func (k keyspace) probe(t string) string {
	if k.cluster() {
		return k.p + ":{" + k.bucket(t) + "}:probe"
	}
	return k.p + ":{_probe}"
}

// confirming reports whether reads are confirmed by the replicas.
func (s *Store) confirming() bool { return s.opts.WaitReplicas > 0 }

// readPipe is the pipeline to queue a read of topic's keys on: on a
// connection to the master of the topic's slot when reads are confirmed.
func (s *Store) readPipe(ctx context.Context, topic string) (goredis.Pipeliner, error) {
	if !s.confirming() {
		return s.rdb.Pipeline(), nil
	}
	c, err := s.waitClient(ctx, s.k.probe(topic))
	if err != nil {
		return nil, s.mapErr(err)
	}
	return c.Pipeline(), nil
}

// sendRead sends a read of topic queued on pipe (from readPipe), confirmed
// by the replicas when reads are confirmed. It returns the first error of
// any command (goredis.Nil is none); the commands hold their replies.
func (s *Store) sendRead(ctx context.Context, topic string, pipe goredis.Pipeliner) error {
	if !s.confirming() {
		return s.send(ctx, pipe)
	}
	cmds := pipe.Cmds()
	w := s.probeAndWait(ctx, pipe, topic)
	_, _ = pipe.Exec(ctx)
	if err := pipeErr(cmds); err != nil {
		return err
	}
	return s.acknowledged(w, "read")
}

// probeAndWait queues the probe write and WAIT on pipe.
func (s *Store) probeAndWait(ctx context.Context, pipe goredis.Pipeliner, topic string) *goredis.Cmd {
	pipe.Set(ctx, s.k.probe(topic), "1", 0)
	return pipe.Do(ctx, "WAIT", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
}

// acknowledged checks WAIT's reply w: too few replicas is ErrUnavailable.
func (s *Store) acknowledged(w *goredis.Cmd, what string) error {
	n, err := w.Int()
	if err != nil {
		return err
	}
	if n < s.opts.WaitReplicas {
		return fmt.Errorf("%d of %d replicas acknowledged within %v (the %s may be lost in a failover): %w",
			n, s.opts.WaitReplicas, s.opts.WaitTimeout, what, baton.ErrUnavailable)
	}
	return nil
}

// runRead runs a script that reads topic's keys (and may settle what has
// lapsed), confirmed by the replicas when reads are confirmed.
func (s *Store) runRead(ctx context.Context, sc *script, topic string, keys []string, args ...any) ([]any, error) {
	if !s.confirming() {
		return s.run(ctx, sc, false, keys, args...)
	}
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	v, err := s.runAndWait(ctx, sc, topic, keys, args)
	return s.scriptReply(sc, v, err)
}
