package sqlite

import (
	"context"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// Group commit of appends.
//
// Every write to the file is a transaction that takes the file's write
// lock (shared with every other process on it) and, with synchronous=full,
// an fsync. Appends from concurrent requests are many small transactions
// that queue for the one write connection and contend for the lock with
// the other processes, whose busy handler sleeps (1 ms, 2 ms, ... 100 ms)
// while it waits. So the appends waiting in this process are committed
// together: one transaction, one fsync, one turn of the lock for all of
// them, each request with its own receipts as if it had been alone.
//
// There is no timer and no added wait: a request that finds no group
// running leads one at once. While a group commits, later requests queue;
// when it is done the leader hands the lead to the oldest queued request,
// which commits every queued request (up to maxGroupItems updates and
// maxGroupTopics topics) as the next group. A leader thus commits its own
// request in the group it leads and returns; nobody leads twice.

// maxGroupItems bounds the updates one group transaction takes (a single
// request may exceed it: it then goes alone).
const maxGroupItems = 5000

// maxGroupTopics bounds the topics of one group: the write batcher's
// bound (maxWriteBatch), so that one group is one transaction when no
// other write waits.
const maxGroupTopics = maxWriteBatch

// appendGroup is the queue of appends waiting for a group commit.
type appendGroup struct {
	mu      sync.Mutex
	pending []*appendReq
	leading bool
	running int // requests the group under way took
}

// appendReq is one Append waiting in the queue.
type appendReq struct {
	ctx      context.Context
	topic    string
	updates  []baton.Update
	receipts []baton.Receipt
	err      error
	done     chan struct{} // closed once receipts or err is set
	lead     chan struct{} // the lead is handed to this request
}

// do appends r's updates in a group and returns its receipts.
func (g *appendGroup) do(s *Store, r *appendReq) ([]baton.Receipt, error) {
	r.done, r.lead = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Lock()
	g.pending = append(g.pending, r)
	first := !g.leading
	g.leading = true
	g.mu.Unlock()
	if first {
		g.commitNext(s)
	}
	// A waiting request does not give up when its context ends: it may be
	// handed the lead. The group skips it if its context ended before the
	// group began.
	for {
		select {
		case <-r.done:
			return r.receipts, r.err
		case <-r.lead:
			g.commitNext(s)
		}
	}
}

// commitNext commits the pending requests of up to maxGroupTopics topics,
// the oldest request's first, then hands the lead on or stops leading.
// Each topic's requests are appended in one write, and the topics' writes
// are queued together, so that the store's write batcher (leasebatch.go)
// commits them in one transaction, each topic in a savepoint of its own:
// appends to many topics (a creation burst, a new item for each of a
// crashed node's topics) cost a turn of the write lock and an fsync per
// group, not per topic.
func (g *appendGroup) commitNext(s *Store) {
	g.mu.Lock()
	byTopic := make(map[string][]*appendReq)
	var topics []string
	var rest []*appendReq
	held := make(map[string]bool) // topics with a request left for a later group: their later ones wait too
	n, taken := 0, 0
	for _, r := range g.pending {
		_, in := byTopic[r.topic]
		fits := n == 0 || n+len(r.updates) <= maxGroupItems
		if held[r.topic] || !fits || (!in && len(topics) == maxGroupTopics) {
			held[r.topic] = true
			rest = append(rest, r)
			continue
		}
		if !in {
			topics = append(topics, r.topic)
		}
		byTopic[r.topic] = append(byTopic[r.topic], r)
		n += len(r.updates)
		taken++
	}
	g.pending = rest
	g.running = taken
	g.mu.Unlock()

	// The group outlives any one request's context: their owners may give
	// up, the others still want their items.
	var ctx context.Context
	var live [][]*appendReq
	var fused []*fusedCommit
	var fns []func(ctx context.Context, tx *txn) ([]change, error)
	for _, topic := range topics {
		var rs []*appendReq
		for _, r := range byTopic[topic] {
			if err := r.ctx.Err(); err != nil {
				r.err = err
				close(r.done)
				continue
			}
			rs = append(rs, r)
		}
		if len(rs) == 0 {
			continue
		}
		if ctx == nil {
			ctx = context.WithoutCancel(rs[0].ctx)
		}
		f := new(fusedCommit)
		live, fused, fns = append(live, rs), append(fused, f), append(fns, s.appendFn(topic, rs, f))
	}
	if len(fns) > 0 {
		ctx, cancel := context.WithTimeout(ctx, s.opts.BusyTimeout+5*time.Second)
		errs := s.batch.doAll(ctx, fns...)
		cancel()
		for i, rs := range live {
			fused[i].settle(errs[i])
			for _, r := range rs {
				if errs[i] != nil {
					r.receipts, r.err = nil, errs[i]
				}
				close(r.done)
			}
		}
	}

	g.mu.Lock()
	g.running = 0
	if len(g.pending) > 0 {
		g.pending[0].lead <- struct{}{}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}
