package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/baton-pub/baton"
)

// Publishing on append (baton.AppendPublisher), on Redis.
//
// On the node that holds a topic's lease, with its publisher caught up, an
// item used to cost the append's script, a wake-up of the publisher, a read
// of the queue and the commit's script: three round trips to Redis, each a
// wake-up of Redis and of the node, which at a trickle of items is most of
// what an item costs (docs/benchmarks.md, "One read of the queue per
// trickled item"). A caught-up publisher registers here; an append to its
// topic then offers it the items numbered after its cursor
// (baton.RestingProposer), and the commit it proposes is sent in the same
// batch as the append, right behind it: one round trip, no read, no
// wake-up. The commit script is fenced as any commit, and also checks that
// the queue's entry at the commit's last seq is this append's (by its
// first seq and ingested time): if another append came first, or the
// append found a msg id already in the queue and wrote nothing, the commit
// is refused, the append stands, and the publisher is woken to commit it
// the usual way. Only with batching (redis/batch.go): not behind Sentinel
// nor with wait_replicas, where each call has its own connection.

// PublishOnAppend implements baton.AppendPublisher.
func (s *Store) PublishOnAppend(topic string, p baton.Proposer) (stop func()) {
	return s.fused.Register(topic, p)
}

// localPublisher is topic's publisher registered in this process, if any
// (nil otherwise). The append script publishes no "append" message while
// the lock is its lease (heldLease): the one publisher the message could
// wake is this process's, which Append wakes itself (SignalAppend), and
// every other node would only be woken for nothing: a PUBLISH to every
// node, a wake-up of each listener, per append (docs/benchmarks.md,
// "Appends told only to whom they concern").
func (s *Store) localPublisher(topic string) baton.RestingProposer {
	rp, _ := s.fused.Get(topic).(baton.RestingProposer)
	return rp
}

// heldLease is rp's lease, or none for a nil rp.
func heldLease(rp baton.RestingProposer) baton.Lease {
	if rp == nil {
		return baton.Lease{}
	}
	return rp.HeldLease()
}

// proposal is the commit a resting publisher proposed for the items of an
// append about to be sent.
type proposal struct {
	p baton.Proposer
	c baton.Commit
}

// propose offers topic's proposer rp (localPublisher), if it rests, the
// updates uniq of an append (ingested at ingestedUs) as the items they
// become if they take the seqs after its cursor; nil if no commit is
// proposed.
func (s *Store) propose(rp baton.RestingProposer, topic string, updates []baton.Update, hashes []baton.Hash, uniq []int, ingestedUs string) *proposal {
	if rp == nil || s.batch == nil || s.opts.WaitReplicas > 0 {
		return nil
	}
	after, ok := rp.Resting()
	if !ok {
		return nil
	}
	us, err := strconv.ParseInt(ingestedUs, 10, 64)
	if err != nil {
		return nil
	}
	at := fromMicros(us)
	items := make([]baton.Item, len(uniq))
	for k, i := range uniq {
		u := updates[i]
		items[k] = baton.Item{Topic: topic, Seq: after + 1 + uint64(k), ID: u.ID, Value: u.Value, MsgID: u.MsgID,
			Hash: hashes[i], IngestedAt: at, Deleted: u.Deleted}
	}
	c, ok := rp.Propose(items)
	if !ok {
		return nil
	}
	return &proposal{p: rp, c: c}
}

// appendWith runs the append script and, right behind it in the same batch,
// the commit prop proposed for its items; it tells the proposer the
// commit's outcome and returns the append's reply and whether the commit
// was made (every item appended is then published).
func (s *Store) appendWith(ctx context.Context, prop *proposal, keys []string, args []any, ingestedUs string) (r []any, published bool, err error) {
	c := prop.c
	var cur baton.Cursor
	cerr := fmt.Errorf("commit %s: not made", c.Topic)
	defer func() { prop.p.Settled(c, cur, cerr) }()
	if err := c.Validate(); err != nil {
		cerr = fmt.Errorf("commit: %w", err)
		r, err := s.run(ctx, scriptAppend, true, keys, args...)
		return r, false, err
	}
	// The entry the append writes begins "<first seq> <ingested_us> "
	// (append.lua): the commit is made only on that entry.
	ckeys, cargs, err := s.commitCall(c, strconv.FormatUint(c.PrevSeq+1, 10)+" "+ingestedUs+" ")
	if err != nil {
		cerr = err
		r, err := s.run(ctx, scriptAppend, true, keys, args...)
		return r, false, err
	}
	if err := s.errClosed(); err != nil {
		cerr = err
		return nil, false, err
	}
	res, err := s.batch.runAll(ctx, scriptCall{scriptAppend, keys, args}, scriptCall{scriptCommit, ckeys, cargs})
	if err != nil {
		// Neither outcome is known: the publisher reads and commits
		// the usual way, fenced on the cursor.
		cerr = s.mapErr(err)
		return nil, false, cerr
	}
	if r, err = s.scriptReply(scriptAppend, res[0].v, res[0].err); err != nil {
		cerr = err
		return nil, false, err
	}
	cr, err := s.scriptReply(scriptCommit, res[1].v, res[1].err)
	if err != nil {
		cerr = fmt.Errorf("commit %s epoch %d: %w", c.Topic, c.Epoch, err)
		return r, false, nil
	}
	cur, cerr = s.committed(c, cr)
	return r, cerr == nil, nil
}
