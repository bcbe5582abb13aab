package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// Append implements baton.Queue: one script, one round trip, for the whole
// batch. Item hashes and queue entries are built here; the script checks
// the msg id index, assigns contiguous seqs, and adds the items and both
// index entries. An item's ingested time is this node's clock, as a leaf's
// time is its publisher's.
func (s *Store) Append(ctx context.Context, topic string, updates []baton.Update) ([]baton.Receipt, error) {
	if err := baton.ValidateAppend(topic, updates); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if len(updates) == 0 {
		return nil, nil
	}
	hashes := make([]baton.Hash, len(updates))
	// A msg id repeated within the batch is a duplicate of its first
	// occurrence: the script gets each msg id once (first[i] is the
	// index of update i's first occurrence).
	first := make([]int, len(updates))
	seen := make(map[string]int, len(updates))
	uniq := make([]int, 0, len(updates))
	for i, u := range updates {
		hashes[i] = baton.HashItem(topic, u)
		if j, ok := seen[u.MsgID]; ok {
			first[i] = j
			continue
		}
		seen[u.MsgID] = i
		first[i] = i
		uniq = append(uniq, i)
	}
	if err := s.register(ctx, topic); err != nil {
		return nil, fmt.Errorf("append to %s: %w", topic, err)
	}
	out := make([]baton.Receipt, len(updates))
	now := strconv.FormatInt(time.Now().UnixMicro(), 10)
	keys := []string{s.k.queue(topic), s.k.msgids(topic), s.k.hashes(topic), s.k.meta(topic), s.k.lock(topic)}
	rp := s.localPublisher(topic)
	quiet := heldLease(rp)
	// The script writes only if none of the msg ids is in the queue yet;
	// otherwise it names those, and the others are sent again. Each round
	// settles at least one update, so this ends.
	for round := 0; len(uniq) > 0; round++ {
		n := len(uniq)
		args := appendArgs(s.k.events(topic), now, updates, hashes, uniq, s.origin, quiet)
		// The topic's publisher, if it rests here, publishes the items
		// with this append (fused.go): not after a round that found
		// msg ids already in the queue.
		var r []any
		var err error
		published := false
		var prop *proposal
		if round == 0 {
			prop = s.propose(rp, topic, updates, hashes, uniq, now)
		}
		if prop != nil {
			r, published, err = s.appendWith(ctx, prop, keys, args, now)
		} else {
			// With WaitReplicas, the receipt waits for the replicas too: a
			// receipt promises that the item survives a failover.
			r, err = s.run(ctx, scriptAppend, true, keys, args...)
		}
		if err != nil {
			// The script may have run (a lost reply): its message is
			// this Store's own, which the listener does not signal
			// (notify.go), so signal it here. A wake-up too many costs
			// a read.
			s.sig.Notify(topic, baton.SignalAppend)
			return nil, fmt.Errorf("append to %s: %w", topic, err)
		}
		switch replyStr(r, 0) {
		case "ok":
			last := replyUint(r, 1)
			for k, i := range uniq {
				out[i] = baton.Receipt{Seq: last + 1 + uint64(k), MsgID: updates[i].MsgID, Hash: hashes[i]}
			}
			uniq = nil
			if !published {
				// The publisher it would wake has them otherwise.
				s.sig.Notify(topic, baton.SignalAppend)
			}
			if replyStr(r, 2) == "1" {
				if err := s.revived(ctx, topic); err != nil {
					return nil, fmt.Errorf("append to %s: %w", topic, err)
				}
			}
		case "dup":
			if (len(r)-1)%3 != 0 || len(r) < 4 {
				return nil, fmt.Errorf("append to %s: script returned %d values for %d updates", topic, len(r), n)
			}
			settled := make(map[int]bool, (len(r)-1)/3)
			for j := 1; j < len(r); j += 3 {
				k := int(replyInt(r, j)) - 1
				if k < 0 || k >= n {
					return nil, fmt.Errorf("append to %s: script named update %d of %d", topic, k+1, n)
				}
				i := uniq[k]
				out[i] = baton.Receipt{Seq: replyUint(r, j+1), MsgID: updates[i].MsgID, Hash: hashes[i], Duplicate: true}
				if h, err := hashOf(replyStr(r, j+2)); err == nil {
					out[i].Hash = h
				}
				settled[k] = true
			}
			rest := uniq[:0:0]
			for k, i := range uniq {
				if !settled[k] {
					rest = append(rest, i)
				}
			}
			uniq = rest
		default:
			return nil, fmt.Errorf("append to %s: unexpected reply %v", topic, r)
		}
	}
	// A repeat within the batch gets its first occurrence's receipt.
	for i := range updates {
		if first[i] != i {
			out[i] = out[first[i]]
			out[i].Duplicate = true
		}
	}
	return out, nil
}

// appendArgs is the append script's ARGV for updates[i], i in uniq: the
// channel, the count, the msg ids, their hashes, the entry's body, then
// the appending Store's origin, then the holder and epoch of the lease
// under which the topic's publisher runs in this process (quiet; none: "", 0).
func appendArgs(channel, ingestedUs string, updates []baton.Update, hashes []baton.Hash, uniq []int, origin string, quiet baton.Lease) []any {
	n := len(uniq)
	size := len(ingestedUs) + 1
	for _, i := range uniq {
		u := updates[i]
		size += hashLen + 3*20 + len(u.MsgID) + len(u.ID) + len(u.Value) // 20: an int and its space
	}
	body := append(make([]byte, 0, size), ingestedUs...)
	body = append(body, ' ')
	args := make([]any, 6+2*n)
	args[0], args[1] = channel, n
	for k, i := range uniq {
		args[2+k], args[2+n+k] = updates[i].MsgID, rawHash(hashes[i])
		body = appendRecord(body, hashes[i], updates[i])
	}
	args[2+2*n], args[3+2*n] = body, origin
	args[4+2*n], args[5+2*n] = quiet.Holder, quiet.Epoch
	return args
}

// checkRead checks a paged read's arguments (baton.ValidateRead) and caps
// its limit at maxLimit.
func checkRead(topic string, limit int) (int64, error) {
	if err := baton.ValidateRead(topic, limit); err != nil {
		return 0, err
	}
	return int64(min(limit, maxLimit)), nil
}

// streamID is the stream entry id of a seq.
func streamID(seq uint64) string { return strconv.FormatUint(seq, 10) + "-0" }

// seqOf reads the seq back from a stream entry id.
func seqOf(id string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(id, "-0"), 10, 64)
	return n
}

// below reads the meta hash's "below" field: every seq under it was trimmed.
func below(c *goredis.StringCmd) uint64 {
	n, err := strconv.ParseUint(c.Val(), 10, 64)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func checkTrimmed(topic string, after, below uint64) error {
	if after+1 < below {
		return fmt.Errorf("%s after %d: the earliest kept item is %d: %w", topic, after, below, baton.ErrTrimmed)
	}
	return nil
}

// pipeErr returns the first error of a pipeline that is not a missing key.
func pipeErr(cmds []goredis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
	}
	return nil
}

// Items implements baton.Queue with one XRANGE, pipelined with a read of
// the trim mark. The mark is read after the range: it only grows, so if it
// is not above after+1 then, nothing the range needed had been trimmed.
func (s *Store) Items(ctx context.Context, topic string, after uint64, limit int) ([]baton.Item, error) {
	n, ok, err := s.rangeArgs(topic, after, limit)
	if !ok {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	queue := spans(ctx, pipe, s.k.queue(topic), after, n)
	bc := pipe.HGet(ctx, s.k.meta(topic), "below")
	if err := s.send(ctx, pipe); err != nil {
		return nil, fmt.Errorf("read items of %s: %w", topic, s.mapErr(err))
	}
	if err := checkTrimmed(topic, after, below(bc)); err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return decodeItems(topic, queue(), after, int(n))
}

// SeqOfHash implements baton.Queue: one HGET on the hash index.
func (s *Store) SeqOfHash(ctx context.Context, topic string, h baton.Hash) (uint64, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return 0, err
	}
	if err := s.errClosed(); err != nil {
		return 0, err
	}
	pipe := s.rdb.Pipeline()
	vc := pipe.HGet(ctx, s.k.hashes(topic), rawHash(h))
	if err := s.send(ctx, pipe); err != nil {
		return 0, fmt.Errorf("look up hash in %s: %w", topic, s.mapErr(err))
	}
	v, err := vc.Result()
	if errors.Is(err, goredis.Nil) {
		return 0, fmt.Errorf("hash %s in %s: %w", h, topic, baton.ErrNotFound)
	}
	return strconv.ParseUint(v, 10, 64)
}

// Topics implements baton.Queue.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	ts, err := s.rdb.SMembers(ctx, s.k.topics()).Result()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", s.mapErr(err))
	}
	if len(ts) == 0 {
		return nil, nil
	}
	// Every topic read here is listed: an Acquire of one need not list it
	// again (listAcquired), a round trip on the path of each hand-over.
	// A topic deleted since is no harm: its Acquire finds the tombstone,
	// and an Append that revives it lists it again (revived).
	for _, t := range ts {
		if _, ok := s.known.Load(t); !ok {
			s.known.Store(t, struct{}{})
		}
	}
	slices.Sort(ts)
	return ts, nil
}

// Topic implements baton.Queue.
func (s *Store) Topic(ctx context.Context, topic string) (baton.TopicInfo, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.TopicInfo{}, err
	}
	if err := s.errClosed(); err != nil {
		return baton.TopicInfo{}, err
	}
	pipe := s.rdb.Pipeline()
	ex := pipe.SIsMember(ctx, s.k.topics(), topic)
	mc := pipe.HMGet(ctx, s.k.meta(topic), "last", "below")
	if err := s.send(ctx, pipe); err != nil {
		return baton.TopicInfo{}, fmt.Errorf("read topic %s: %w", topic, s.mapErr(err))
	}
	if !ex.Val() {
		return baton.TopicInfo{}, fmt.Errorf("topic %s: %w", topic, baton.ErrNotFound)
	}
	info := baton.TopicInfo{Topic: topic, LastSeq: fieldUint(mc.Val()[0])}
	b := max(fieldUint(mc.Val()[1]), 1)
	if info.LastSeq >= b {
		info.FirstSeq = b
	}
	return info, nil
}

// Trim implements baton.Queue. It deletes in chunks, one script each, so
// that a large trim never blocks Redis for long; each chunk is atomic and
// moves the trim mark, so an interrupted trim leaves a consistent queue.
func (s *Store) Trim(ctx context.Context, topic string, before uint64) (int, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return 0, err
	}
	keys := []string{s.k.queue(topic), s.k.msgids(topic), s.k.hashes(topic), s.k.cursor(topic), s.k.meta(topic)}
	total := 0
	for {
		r, err := s.run(ctx, scriptTrim, false, keys, before, trimChunk)
		if err != nil {
			return total, fmt.Errorf("trim %s: %w", topic, err)
		}
		total += int(replyInt(r, 0))
		if replyInt(r, 1) == 0 {
			return total, nil
		}
	}
}

// rangeArgs checks the arguments of a read of seqs after after: it returns
// the row limit, and ok false (with a nil error if there is simply nothing
// to read) when the read must not go on.
func (s *Store) rangeArgs(topic string, after uint64, limit int) (n int64, ok bool, err error) {
	l, err := checkRead(topic, limit)
	if err != nil {
		return 0, false, err
	}
	if err := s.errClosed(); err != nil {
		return 0, false, err
	}
	if after == math.MaxUint64 {
		return 0, false, nil
	}
	return l, true, nil
}
