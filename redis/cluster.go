package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// Redis Cluster (doc.go, "Cluster"): every topic lives in one of a fixed
// number of buckets, each with a copy of every node lease; the node lease
// itself stays in {_nodes}. These methods keep the copies: pushed after the
// node lease is started or renewed, ended after it ends.

// DefaultBuckets is the number of buckets of a Cluster deployment unless the
// URL sets buckets=N. It must never change for an existing deployment.
const DefaultBuckets = 16

var (
	scriptCopyNode     = newScript("copynode")
	scriptEndCopy      = newScript("endcopy")
	scriptReadNode     = newScript("readnode")
	scriptBucketCounts = newScript("bucketcounts")
)

// bucketCall is one script call per bucket, pipelined (go-redis sends one
// pipeline per master, in parallel).
type bucketCall struct {
	keys []string
	args []any
}

// runBuckets runs sc once per bucket, in one pipeline, and returns each
// bucket's reply or error in the order of s.k.buckets. Scripts missing on a
// master (a promoted replica) are sent again by body.
func (s *Store) runBuckets(ctx context.Context, sc *script, call func(tag string) bucketCall) ([][]any, []error) {
	n := len(s.k.buckets)
	out, errs := make([][]any, n), make([]error, n)
	if err := s.errClosed(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return out, errs
	}
	calls := make([]bucketCall, n)
	for i, tag := range s.k.buckets {
		calls[i] = call(tag)
	}
	todo := make([]int, n)
	for i := range todo {
		todo[i] = i
	}
	for _, byBody := range []bool{false, true} {
		pipe := s.rdb.Pipeline()
		cmds := make([]*goredis.Cmd, len(todo))
		for j, i := range todo {
			if byBody {
				cmds[j] = sc.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
			} else {
				cmds[j] = sc.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
			}
		}
		_, _ = pipe.Exec(ctx)
		var again []int
		for j, i := range todo {
			v, err := cmds[j].Result()
			if err != nil && !byBody && goredis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
				continue
			}
			if err != nil {
				errs[i] = s.mapErr(err)
				continue
			}
			r, ok := v.([]any)
			if !ok {
				errs[i] = fmt.Errorf("script %s: unexpected reply %T", sc.name, v)
				continue
			}
			out[i] = r
		}
		if todo = again; len(todo) == 0 {
			break
		}
	}
	return out, errs
}

// pushCopies copies node lease nl into every bucket after the {_nodes}
// script that started or renewed it with ttl, sent at local time t0: each
// copy expires at its own master's clock plus what is left of ttl by the
// local monotonic clock, so no copy is live before the holder could have
// asked for it, nor shorter than the holder trusts its node lease
// (doc.go, "Cluster"). Copies of an earlier epoch that the pushes end give
// release records: their topics are signalled. A bucket whose push failed
// keeps its copy's earlier expiry: its topics fence early, which is safe.
func (s *Store) pushCopies(ctx context.Context, nl baton.NodeLease, t0 time.Time, ttl time.Duration) error {
	rem := ttl - time.Since(t0)
	if rem <= 0 {
		return fmt.Errorf("copy node lease %s epoch %d: the ttl passed before the copies could be sent: %w",
			nl.Node, nl.Epoch, baton.ErrUnavailable)
	}
	rs, errs := s.runBuckets(ctx, scriptCopyNode, func(tag string) bucketCall {
		return bucketCall{[]string{s.k.copyLease(tag, nl.Node)},
			[]any{s.k.bucketSpace(tag), s.k.nodesChannel(), nl.Node, nl.Epoch, nl.ExpiresAt.UnixMicro(), micros(rem)}}
	})
	var failed []error
	for i, r := range rs {
		if errs[i] != nil {
			failed = append(failed, fmt.Errorf("bucket %s: %w", s.k.buckets[i], errs[i]))
			continue
		}
		if replyStr(r, 0) == "ok" {
			s.signalRecords(r, 2)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("copy node lease %s epoch %d into %d of %d buckets: %w",
			nl.Node, nl.Epoch, len(failed), len(s.k.buckets), errors.Join(failed...))
	}
	return nil
}

// endCopies ends every bucket's copy of node's lease at epoch (or earlier)
// after it ended on {_nodes}, and returns the release records written: one
// per topic lease held under it, each written once whoever sweeps. A bucket
// that could not be reached keeps its copy until the copy's own expiry;
// its topics' records are then written by the next Acquire or Expire of
// each (settle), as for any lapsed lease.
func (s *Store) endCopies(ctx context.Context, node string, epoch uint64, reason baton.ReleaseReason) ([]baton.ReleaseRecord, error) {
	rs, errs := s.runBuckets(ctx, scriptEndCopy, func(tag string) bucketCall {
		return bucketCall{[]string{s.k.copyLease(tag, node)},
			[]any{s.k.bucketSpace(tag), s.k.nodesChannel(), node, epoch, string(reason)}}
	})
	var recs []baton.ReleaseRecord
	var failed []error
	for i, r := range rs {
		if errs[i] != nil {
			failed = append(failed, fmt.Errorf("bucket %s: %w", s.k.buckets[i], errs[i]))
			continue
		}
		got, err := s.decodeRecords(r, 1)
		if err != nil {
			failed = append(failed, err)
		}
		recs = append(recs, got...)
	}
	if len(failed) > 0 {
		s.log.Warn("redis: end the copies of a node lease: some buckets keep theirs until it lapses",
			"node", node, "epoch", epoch, "err", errors.Join(failed...))
	}
	return recs, nil
}

// copyNode copies node lease nl into one bucket if it is live on {_nodes}:
// for an Acquire that found no live copy there. It reports whether the
// copy was made.
func (s *Store) copyNode(ctx context.Context, tag string, nl baton.NodeLease) (bool, error) {
	t0 := time.Now()
	r, err := s.run(ctx, scriptReadNode, false, []string{s.k.nodeLease(nl.Node)})
	if err != nil {
		return false, err
	}
	if replyUint(r, 0) != nl.Epoch || replyInt(r, 1) == 1 {
		return false, nil
	}
	exp := replyInt(r, 2)
	rem := time.Duration(exp-replyInt(r, 3))*time.Microsecond - time.Since(t0)
	if rem <= 0 {
		return false, nil
	}
	r, err = s.run(ctx, scriptCopyNode, false, []string{s.k.copyLease(tag, nl.Node)},
		s.k.bucketSpace(tag), s.k.nodesChannel(), nl.Node, nl.Epoch, exp, micros(rem))
	if err != nil || replyStr(r, 0) != "ok" {
		return false, err
	}
	s.signalRecords(r, 2)
	return true, nil
}

// signalRecords signals the topics of the release records in r[from:].
func (s *Store) signalRecords(r []any, from int) {
	if _, err := s.decodeRecords(r, from); err != nil {
		s.log.Warn("redis: decode release records", "err", err)
	}
}

// decodeRecords decodes the release records in r[from:], written when a
// node lease (or a bucket's copy of it) ended, and signals what they end.
func (s *Store) decodeRecords(r []any, from int) ([]baton.ReleaseRecord, error) {
	var recs []baton.ReleaseRecord
	var topics []string
	for i := from; i < len(r); i++ {
		rec, err := decodeRecord("", replyStr(r, i))
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
		topics = append(topics, rec.Topic)
	}
	if len(topics) > 0 {
		s.nodeEnded(topics)
		s.sig.Notify("", baton.SignalNode)
	}
	return recs, nil
}

// countsFor is how long bucketCounts reuses its last answer if no lock
// changed meanwhile (countsChanged: every lock change, here or announced
// on pub/sub, makes it stale at once). Every node's elector reads the node
// leases at each expiry it knows of, about once per TTL, and a fresh count
// costs a script per bucket; an idle cluster's counts do not change. The
// bound only covers a lock change whose message was lost.
const countsFor = 10 * time.Second

// countCache is bucketCounts' last answer.
type countCache struct {
	sync.Mutex
	gen uint64 // countsGen when it was read
	at  time.Time
	by  map[string]int
}

// countsChanged marks the cached counts stale: a lock was taken or ended,
// here or (by pub/sub) through another store.
func (s *Store) countsChanged() { s.countsGen.Add(1) }

// bucketCounts adds up, over the buckets, how many topics each node holds:
// one read-only script per bucket, or the answer of less than countsFor ago
// if no lock changed since.
func (s *Store) bucketCounts(ctx context.Context, nodes []string) ([]int, error) {
	counts := make([]int, len(nodes))
	if len(nodes) == 0 {
		return counts, nil
	}
	gen := s.countsGen.Load()
	s.counts.Lock()
	fresh := s.counts.by != nil && s.counts.gen == gen && time.Since(s.counts.at) < countsFor
	for i, n := range nodes {
		c, ok := s.counts.by[n]
		fresh = fresh && ok
		counts[i] = c
	}
	s.counts.Unlock()
	if fresh {
		return counts, nil
	}
	clear(counts)
	at := time.Now()
	rs, errs := s.runBuckets(ctx, scriptBucketCounts, func(tag string) bucketCall {
		keys := make([]string, len(nodes))
		for i, n := range nodes {
			keys[i] = s.k.copyTopics(tag, n)
		}
		return bucketCall{keys: keys}
	})
	for i, r := range rs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		for j := range nodes {
			counts[j] += int(replyInt(r, j))
		}
	}
	by := make(map[string]int, len(nodes))
	for i, n := range nodes {
		by[n] = counts[i]
	}
	s.counts.Lock()
	s.counts.gen, s.counts.at, s.counts.by = gen, at, by
	s.counts.Unlock()
	return counts, nil
}

// checkBuckets records the number of buckets on a new Cluster deployment
// and refuses to open one that was set up with another: the topics' keys
// would be looked for in the wrong slots.
func (s *Store) checkBuckets(ctx context.Context) error {
	n := strconv.Itoa(len(s.k.buckets))
	if err := s.rdb.SetNX(ctx, s.k.bucketsKey(), n, 0).Err(); err != nil {
		return s.openErr("record the number of buckets", err)
	}
	got, err := s.rdb.Get(ctx, s.k.bucketsKey()).Result()
	if err != nil {
		return s.openErr("read the number of buckets", err)
	}
	if got != n {
		return baton.Invalidf("store", "redis URL: buckets=%s, but this deployment (prefix %q) was set up with buckets=%s, which must never change",
			n, s.k.p, got)
	}
	return nil
}

// waitClient is the client a script and its WAIT go through: the master of
// the script's slot on Redis Cluster (WAIT counts the replicas of the
// connection's own server), the store's client otherwise.
func (s *Store) waitClient(ctx context.Context, key string) (goredis.Cmdable, error) {
	cc, ok := s.rdb.(*goredis.ClusterClient)
	if !ok {
		return s.rdb, nil
	}
	return cc.MasterForKey(ctx, key)
}
