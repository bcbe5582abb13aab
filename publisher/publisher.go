// Package publisher is the lease holder's loop: it resumes from the cursor
// (the last published hash, looked up in the index: docs/design.md, step 5)
// and commits the queue's later items first-in-first-out, in batches, under
// the lease's fencing epoch.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// Store is what the publisher needs of the store.
type Store interface {
	baton.Queue
	baton.Publications
	baton.Notifier
}

// DefaultBatch is Options.Batch's default.
const DefaultBatch = 4000

// MaxBatch bounds Options.Batch: the most items the engines return from
// one read (redis and sqlite.MaxRead), so that a read that returns fewer
// items than it asked for means the queue held no more.
const MaxBatch = 10000

// startBatch is the size of a publisher's first read, and of every read
// after one that was not full.
const startBatch = 1000

// DefaultPoll is Options.Poll's default.
const DefaultPoll = 5 * time.Minute

// Options tune a publisher.
type Options struct {
	// Batch is the most items one commit publishes. Default 4000, at most
	// MaxBatch. Reads start at 1000 items (or Batch, if smaller) and
	// double after each full one, up to Batch, so only a publisher behind
	// a backlog commits batches that big.
	Batch int
	// Poll is the fallback re-read of an idle queue if a notification is
	// lost. Default DefaultPoll: the engines wake every subscription after
	// they may have lost a notification (see baton.Notifier), so this is a
	// last resort, kept rare because every idle topic pays it.
	Poll   time.Duration
	Clock  baton.Clock
	Logger *slog.Logger
	// OnCommit is told of every commit (metrics, tests). It must not block.
	OnCommit func(baton.Cursor, int)
	// OnPublished, if set, is handed every commit's items as the store's
	// Published now returns them, in order (the hub's hand-off on the
	// holder's node, hub/local.go). It must not block or change them.
	OnPublished func([]baton.Published)
	// Resumed, if set, is called once, when the publisher has resumed:
	// its first commit is done, or its first read found the queue empty
	// (with ResumeWait, once the queue has stayed empty that long since
	// Run began). A node holds back a new lease's other work until its
	// leases have resumed (node/resume.go). It must not block.
	Resumed func()
	// ResumeWait, if positive, is how long an empty queue keeps the
	// publisher from calling Resumed: a crash hands a node thousands of
	// topics whose next items come after the acquisitions (their sources
	// send them on), and their first commits are the hand-over.
	ResumeWait time.Duration
	// From, if set, is where publishing resumes, as Resume found it after
	// the lease was taken: Run does not read it again.
	From *baton.Cursor
	// Checked, if set, delivers the result of CheckResume of From, made
	// meanwhile: Run reads the queue but commits nothing before it has
	// it, and stops on an error. A crash hands thousands of topics over
	// at once, and every store round trip before the first commit counts.
	Checked <-chan error
	// Ledger, if set, is the lease's checkpointer (see package ledger): it
	// is handed the leaves of every successful commit, in order, and may
	// give a signed checkpoint to store with the next commit. Its methods
	// run on the commit path and must not block for long.
	Ledger Ledger
	// On a store that publishes on append (baton.AppendPublisher),
	// OnCommit, OnPublished, Resumed and the Ledger's methods may also be
	// called from the goroutine of an append that made the commit
	// (onappend.go); never two commits' at once, and always in commit
	// order.
}

// Ledger is the publisher's side of the ledger's checkpointer.
type Ledger interface {
	// Checkpoint returns a signed checkpoint to store with the next
	// commit (see baton.Commit.Checkpoint), or nil.
	Checkpoint() *baton.Checkpoint
	// Committed is told of a successful commit: its leaves and the
	// checkpoint it carried (nil if none).
	Committed(leaves []baton.Leaf, cp *baton.Checkpoint)
}

// Run publishes the topic under lease until ctx ends or the store fences
// it (an error wrapping baton.ErrLeaseLost). Any other error means the
// publisher failed and the lease should be released as failed.
func Run(ctx context.Context, st Store, lease baton.Lease, o Options) error {
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	o.Batch = min(o.Batch, MaxBatch)
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Clock == nil {
		o.Clock = baton.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("topic", lease.Topic, "epoch", lease.Epoch)
	topic := lease.Topic

	// Subscribe before reading, so an append between the read and the wait
	// is not missed.
	sub := st.Subscribe(topic, baton.SignalAppend)
	defer sub.Close()

	var cur baton.Cursor
	var err error
	if o.From != nil {
		cur = *o.From
	} else if cur, err = Resume(ctx, st, topic); err != nil {
		return err
	}
	log.Info("publishing", "after_seq", cur.Seq)
	// resumed calls o.Resumed once, from whichever goroutine made the
	// first commit (a commit on append is made on the append's).
	var resumeOnce sync.Once
	var isResumed atomic.Bool
	resumed := func() {
		resumeOnce.Do(func() {
			isResumed.Store(true)
			if o.Resumed != nil {
				o.Resumed()
			}
		})
	}
	// committed is the bookkeeping of every successful commit.
	committed := func(c baton.Commit, cur baton.Cursor) {
		if o.Ledger != nil {
			o.Ledger.Committed(c.Leaves(), c.Checkpoint)
		}
		if o.OnCommit != nil {
			o.OnCommit(cur, len(c.Items))
		}
		if o.OnPublished != nil {
			o.OnPublished(c.Published())
		}
		resumed()
	}
	checkpoint := func() *baton.Checkpoint {
		if o.Ledger != nil {
			return o.Ledger.Checkpoint()
		}
		return nil
	}
	// A store that publishes on append is handed the commits of the items
	// appended through this process while the loop waits (onappend.go).
	var fa *onAppend
	if ap, ok := st.(baton.AppendPublisher); ok {
		fa = &onAppend{lease: lease, batch: o.Batch, clock: o.Clock, checkpoint: checkpoint, done: committed}
		stop := ap.PublishOnAppend(topic, fa)
		defer func() {
			stop()
			fa.busy() // the commit in flight, if any, settles before Run returns
		}()
		checkpoint = fa.takeCheckpoint
	}
	began := o.Clock.Now()

	poll := o.Clock.NewTimer(o.Poll)
	defer poll.Stop()
	// After a full batch the next read is started before the commit, so
	// that the store works on both at once: the queue only grows at its
	// end, so a read past the batch being committed sees what it would
	// see after the commit. ahead is that read, if one is in flight.
	var ahead chan itemsRead
	// asked is how many items the read in hand asked for. A read asks
	// for start items, and the read ahead of a full one for twice as many
	// as that one, up to o.Batch: a publisher that keeps up commits small
	// batches (short store transactions, low latency), and one behind a
	// backlog soon commits big ones (fewer round trips, each waiting its
	// turn behind the ingest).
	start := min(o.Batch, startBatch)
	asked := start
	// The items the acquire read after the cursor (baton.Resume), if it
	// read any: the first commit needs no read of its own. None read
	// means a read here, after the subscription, so that an append since
	// the acquire is not missed.
	var first []baton.Item
	if r := lease.Resume; r != nil && len(r.Items) > 0 && lease.Cursor != nil &&
		lease.Cursor.Seq == cur.Seq && lease.Cursor.Hash == cur.Hash {
		first, asked = r.Items, min(r.Asked, o.Batch)
		first = first[:min(len(first), asked)]
	}
	defer func() {
		if ahead != nil {
			<-ahead // let the read finish before the caller closes the store
		}
	}()
	// drained: the last read, made after the subscription, found fewer
	// items than it asked for, so the queue held nothing more then and
	// anything appended since is signalled. After committing what it
	// found the publisher waits for that signal instead of reading again
	// at once: at a trickle of appends each item costs one read, not two.
	drained := false
	for {
		var items []baton.Item
		read := false // items come from a read made after the subscription
		switch {
		case drained:
			drained = false // nothing to read until a signal
		case first != nil:
			items, first = first, nil
		case ahead != nil:
			r := <-ahead
			ahead = nil
			items, err, read = r.items, r.err, true
		default:
			asked = start
			items, err = st.Items(ctx, topic, cur.Seq, asked)
			read = true
		}
		short := read && len(items) < asked // the queue held no more then
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publish %s: read queue after %d: %w", topic, cur.Seq, err)
		}
		if len(items) == 0 {
			var waited <-chan time.Time
			stop := func() bool { return false }
			if !isResumed.Load() && o.Resumed != nil {
				if left := o.ResumeWait - o.Clock.Now().Sub(began); left > 0 {
					w := o.Clock.NewTimer(left)
					waited, stop = w.C(), w.Stop
				} else {
					resumed()
				}
			}
			poll.Reset(o.Poll)
			// Caught up: the appends through this process may publish
			// on their own now, once the cursor's check is done.
			rested := fa != nil && o.Checked == nil
			if rested {
				fa.rest(cur)
			}
			select {
			case <-ctx.Done():
				stop()
				return nil
			case <-sub.C():
			case <-poll.C():
			case <-waited:
				resumed()
			}
			stop()
			if rested {
				cur = fa.busy()
			}
			continue
		}
		if len(items) == asked {
			ahead = make(chan itemsRead, 1)
			after, n := items[len(items)-1].Seq, min(2*asked, o.Batch)
			asked = n
			go func() {
				its, err := st.Items(ctx, topic, after, n)
				ahead <- itemsRead{its, err}
			}()
		}
		cp := checkpoint()
		if o.Checked != nil {
			select {
			case err := <-o.Checked:
				if err != nil {
					return err
				}
			case <-ctx.Done():
				return nil
			}
			o.Checked = nil
		}
		c := baton.Commit{Topic: topic, Epoch: lease.Epoch, Holder: lease.Holder,
			PrevSeq: cur.Seq, Items: items, At: o.Clock.Now(), Checkpoint: cp}
		next, err := st.Commit(ctx, c)
		switch {
		case err == nil:
			cur = next
			committed(c, cur)
			drained = short
		case errors.Is(err, baton.ErrLeaseLost):
			// A fence refusal: logged once, here; the elector logs the
			// step-down that follows ("lease ended", reason fenced).
			log.Info("fenced: stopping", "cursor", cur.Seq, "published_for", o.Clock.Now().Sub(began), "err", err)
			return fmt.Errorf("publish %s: %w", topic, err)
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("publish %s: commit after %d: %w", topic, cur.Seq, err)
		}
	}
}

// itemsRead is the outcome of a read of the queue.
type itemsRead struct {
	items []baton.Item
	err   error
}

// Resume finds where publishing must carry on: it reads the cursor's hash
// and looks it up in the index (docs/design.md, step 5). A cursor whose hash is not where
// the cursor says is a corrupt store: publishing stops rather than guess.
// A topic deleted with its ledger kept and appended to again has an empty
// queue behind a cursor (docs/design.md, "Topic lifecycle"): there the
// ledger's leaf at the cursor, written in the same step as the cursor,
// stands for the index.
func Resume(ctx context.Context, st Store, topic string) (baton.Cursor, error) {
	cur, err := st.Cursor(ctx, topic)
	if err != nil {
		return cur, fmt.Errorf("resume %s: read cursor: %w", topic, err)
	}
	return cur, CheckResume(ctx, st, topic, cur)
}

// CheckResume checks a cursor read by Resume against the index, as Resume
// does (Options.Checked runs it beside the first read of the queue).
func CheckResume(ctx context.Context, st Store, topic string, cur baton.Cursor) error {
	if cur.Seq == 0 {
		return nil
	}
	seq, err := st.SeqOfHash(ctx, topic, cur.Hash)
	if errors.Is(err, baton.ErrNotFound) {
		ls, lerr := st.Leaves(ctx, topic, cur.Seq-1, 1)
		if lerr == nil && len(ls) == 1 && ls[0].Seq == cur.Seq && ls[0].ItemHash == cur.Hash {
			seq, err = cur.Seq, nil
		}
	}
	if err != nil {
		return fmt.Errorf("resume %s: look up last published hash %s: %w", topic, cur.Hash, err)
	}
	if seq != cur.Seq {
		return fmt.Errorf("resume %s: index puts hash %s at %d, cursor says %d", topic, cur.Hash, seq, cur.Seq)
	}
	return nil
}
