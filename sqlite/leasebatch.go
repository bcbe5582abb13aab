package sqlite

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// leaseBatcher runs the lease writes of one Store (acquire, release,
// expire, the node leases' but their renewals) on the lease connection,
// and those that wait for it at the same time in one transaction, each in
// a savepoint of its own: a group commit. When a node lease ends, every
// node races for hundreds of topics at once; one write transaction each
// would queue them on the file's one write lock for seconds, and a batch
// takes the lock once. Each write still succeeds or fails on its own (a
// refused acquire rolls back to its savepoint), and its signals are raised
// once the batch commits.
type leaseBatcher struct {
	s       *Store
	mu      sync.Mutex
	pending []*leaseReq
	running bool
}

// maxLeaseBatch bounds a batch, so that one transaction does not hold the
// write lock for long.
const maxLeaseBatch = 256

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
	b.mu.Lock()
	b.pending = append(b.pending, r)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
	return <-r.done
}

func (b *leaseBatcher) run() {
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxLeaseBatch)
		if n == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		b.commit(batch)
	}
}

// commit runs one batch in one transaction.
func (b *leaseBatcher) commit(batch []*leaseReq) {
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
	tx, err := s.begin(ctx, s.ldb, 100*time.Microsecond, 2*time.Millisecond)
	if err != nil {
		fail(err)
		return
	}
	defer tx.Rollback()
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
	for _, c := range all {
		if c.sig != 0 {
			s.sig.Notify(c.topic, c.sig)
		}
	}
	for i, r := range live {
		r.done <- errs[i]
	}
}
