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
// which commits every queued request for its topic (up to maxGroupItems
// updates) as the next group. A leader thus commits its own request in the
// group it leads and returns; nobody leads twice.

// maxGroupItems bounds the updates one group transaction takes (a single
// request may exceed it: it then goes alone).
const maxGroupItems = 5000

// appendGroup is the queue of appends waiting for a group commit.
type appendGroup struct {
	mu      sync.Mutex
	pending []*appendReq
	leading bool
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

// commitNext commits the oldest pending request and the other pending
// requests for its topic, then hands the lead on or stops leading.
func (g *appendGroup) commitNext(s *Store) {
	g.mu.Lock()
	topic := g.pending[0].topic
	var batch, rest []*appendReq
	n := 0
	for _, r := range g.pending {
		if r.topic == topic && (len(batch) == 0 || n+len(r.updates) <= maxGroupItems) {
			batch = append(batch, r)
			n += len(r.updates)
		} else {
			rest = append(rest, r)
		}
	}
	g.pending = rest
	g.mu.Unlock()

	var live []*appendReq
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) > 0 {
		// The group outlives any one request's context: their owners
		// may give up, the others still want their items.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), s.opts.BusyTimeout+5*time.Second)
		err := s.appendBatch(ctx, topic, live)
		cancel()
		for _, r := range live {
			if err != nil {
				r.receipts, r.err = nil, err
			}
			close(r.done)
		}
	}

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].lead <- struct{}{}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}
