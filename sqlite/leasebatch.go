package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// leaseBatcher runs writes of one Store on one connection, and those that
// wait for it at the same time in one transaction, each in a savepoint of
// its own: a group commit. There are two: the lease writes (acquire,
// release, expire, the node leases' but their renewals) on the lease
// connection, and the other fenced writes (commits, checkpoints,
// cosignatures, trims, heartbeats) on the write connection. When a node
// lease ends, every node races for hundreds of topics at once, then
// commits their next items, signs and cosigns their checkpoints; one write
// transaction each would queue them on the file's one write lock (and one
// fsync each) for seconds, and a batch takes the lock once. Each write
// still succeeds or fails on its own (a refused acquire or a fenced commit
// rolls back to its savepoint), and its signals are raised once the batch
// commits. A write that finds no batch running starts one at once: a lone
// write waits for nobody.
type leaseBatcher struct {
	s  *Store
	db *sql.DB // one connection
	// The file's write lock is polled from spin up to maxSpin.
	spin, maxSpin time.Duration
	// max bounds a batch, so that one transaction does not hold the
	// write lock for long.
	max int

	mu      sync.Mutex
	pending []*leaseReq
	running bool
	// For tests: the writes of the batch under way (under mu), and the
	// transactions committed.
	current int
	batches atomic.Int64
}

// The bounds of a batch: lease writes are tiny; the other writes carry
// leaves and checkpoints.
const (
	maxLeaseBatch = 256
	maxWriteBatch = 64
)

// batchYield bounds the pause between two batches when more writes wait
// and another writer waits for the file's write lock (handOn, turn.go):
// batches back to back would take it again before the others looked, the
// node lease renewals (which poll at most a millisecond apart, see
// writeNode) included. A renewal starved past its node lease's trust would
// make the node give up every topic with no fault at all.
const batchYield = time.Millisecond

type leaseReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *txn) ([]change, error)
	done chan error
}

// do runs fn in the next batch and returns its outcome. A write whose ctx
// ends before its batch starts is not run; once its batch started, it runs
// to the end (its statements do not see ctx: a statement interrupted inside
// a transaction would roll back the whole batch), bounded by the busy
// timeout.
func (b *leaseBatcher) do(ctx context.Context, fn func(ctx context.Context, tx *txn) ([]change, error)) error {
	r := &leaseReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	b.enqueue(r)
	return <-r.done
}

// doAll is do for several writes at once: queued together, they share a
// batch (as far as its bound allows); each succeeds or fails on its own.
func (b *leaseBatcher) doAll(ctx context.Context, fns ...func(ctx context.Context, tx *txn) ([]change, error)) []error {
	rs := make([]*leaseReq, len(fns))
	for i, fn := range fns {
		rs[i] = &leaseReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	}
	b.enqueue(rs...)
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = <-r.done
	}
	return errs
}

// enqueue queues rs together and starts a batch if none is running.
func (b *leaseBatcher) enqueue(rs ...*leaseReq) {
	b.mu.Lock()
	b.pending = append(b.pending, rs...)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
}

func (b *leaseBatcher) run() {
	for {
		b.mu.Lock()
		n := min(len(b.pending), b.max)
		if n == 0 {
			b.running, b.current = false, 0
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.current = n
		b.mu.Unlock()
		held := b.commit(batch)
		b.mu.Lock()
		more := len(b.pending) > 0
		b.mu.Unlock()
		if more {
			b.s.handOn(held)
		}
	}
}

// commit runs one batch in one transaction. It returns the bell's count
// of wake-ups heard while it had the write lock (see handOn).
func (b *leaseBatcher) commit(batch []*leaseReq) (held uint64) {
	s := b.s
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	fail := func(err error) {
		for _, r := range live {
			r.done <- err
		}
	}
	defer s.beginWrite()()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.BusyTimeout+time.Second)
	defer cancel()
	tx, err := s.begin(ctx, b.db, b.spin, b.maxSpin)
	if err != nil {
		fail(err)
		return
	}
	defer tx.Rollback()
	// The statements run with the lock held and see no deadline: modernc
	// watches a statement's context with a goroutine of its own, started
	// for every statement (a sixteenth of a mass hand-over's writes), and
	// an interrupt would roll the whole batch back anyway. The transaction
	// itself still ends at ctx's deadline.
	ctx = context.WithoutCancel(ctx)
	held, _ = s.heardSoFar()
	errs := make([]error, len(live))
	var all []change
	for i, r := range live {
		if len(live) == 1 {
			cs, err := r.fn(ctx, tx)
			errs[i], all = err, cs
			break
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT lease`); err != nil {
			fail(wrapErr(err))
			return
		}
		cs, err := r.fn(ctx, tx)
		if err != nil {
			errs[i] = err
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO lease`); rerr != nil {
				fail(wrapErr(rerr))
				return
			}
		} else {
			all = append(all, cs...)
		}
		if _, err := tx.ExecContext(ctx, `RELEASE lease`); err != nil {
			fail(wrapErr(err))
			return
		}
	}
	if len(live) == 1 && errs[0] != nil {
		live[0].done <- errs[0]
		return
	}
	if err := s.logChanges(ctx, tx, all); err != nil {
		fail(err)
		return
	}
	if err := tx.Commit(); err != nil {
		fail(wrapErr(err))
		return
	}
	b.batches.Add(1)
	s.signalled(all)
	for i, r := range live {
		r.done <- errs[i]
	}
	return held
}
