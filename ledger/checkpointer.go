package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/baton-pub/baton"
)

// Store is what the ledger needs of the store.
type Store interface {
	baton.Publications
	baton.Checkpoints
	baton.Reanchors
	Lock(ctx context.Context, topic string) (baton.LockState, error)
	Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error)
	NodeKeys(ctx context.Context) ([]baton.NodeKey, error)
	baton.Notifier
}

// Defaults of the checkpoint cadence.
const (
	DefaultEvery    = 1000
	DefaultInterval = time.Second
)

// CheckpointerConfig configures the lease holder's checkpointer.
type CheckpointerConfig struct {
	Store Store
	Lease baton.Lease
	Key   *Key
	// Every and Interval: a checkpoint is signed once Every leaves were
	// added since the last one, or Interval after a leaf was added,
	// whichever comes first.
	Every    uint64
	Interval time.Duration
	// Tree, if set, is the node's own copy of the topic's log (its
	// witness's): the checkpointer appends the committed leaves to it and
	// signs its in-memory compact range, so that the leaves are hashed once
	// on this node and a takeover does not re-read the ledger from the
	// store. Without it the checkpointer keeps its own compact range,
	// rebuilt from the store's leaves on takeover.
	Tree *Tree
	// OnAppend, if set, is called after leaves were appended to Tree.
	OnAppend func()
	Logger   *slog.Logger
	// OnAlarm is told when the ledger in the store does not match the last
	// checkpoint (the checkpointer then stops signing).
	OnAlarm func(msg string)
	// Clock drives Interval and the flush (default the system clock).
	Clock baton.Clock
	// Halted, if set, says whether the node's witness halts the topic
	// (Witness.Halted): the store lost ledger writes the node's copy
	// holds. The checkpointer then signs nothing and stops, at setup or
	// before its next signature, and the lease with it: a fail-closed
	// halt even when it signs from the store (docs/ledger.md, "Lost
	// writes and re-anchoring").
	Halted func() *baton.LedgerHalt
	// Cursor, if set, is the topic's cursor as read after the lease was
	// taken: the first setup starts from it instead of reading it again (a
	// crash hands thousands of topics over at once; each read counts).
	Cursor *baton.Cursor
	// OnStop, if set, is called once the checkpointer has stopped, on
	// Close or on its own (fenced, failed): the publisher it signs for
	// stops with it without a goroutine waiting on Done.
	OnStop func()
}

// committedQueue is how many commits' leaves wait for the checkpointer
// before Committed drops them (it then catches up from the store): enough
// for a publisher's bursts, small for a node holding thousands of leases.
const committedQueue = 64

// Checkpointer runs beside the lease holder's commit loop: it keeps the
// compact range of the topic's log in memory, fed by Committed with the
// leaves of every commit (hashing is done here, off the commit path), and
// signs a checkpoint every Every leaves or Interval. Signing is O(log n).
//
// A signed checkpoint waits for the publisher's next commit, which stores
// it in the same transaction (baton.Commit.Checkpoint): under load,
// checkpoints cost the store no extra write. If no commit takes it within
// a short while (the topic went idle), the checkpointer stores it itself.
// Either way the write is fenced by the lease's epoch: once the lease is
// lost nothing can be stored, and the checkpointer stops.
type Checkpointer struct {
	cfg CheckpointerConfig
	// log is the logger with the topic and epoch, made at its first use:
	// a node taking over thousands of leases at once makes thousands of
	// checkpointers, most of which never log.
	log  func() *slog.Logger
	ch   chan []baton.Leaf
	done chan struct{} // closed when run returns

	log2   logState
	signed uint64 // size of the last checkpoint signed (pending or stored)

	pmu     sync.Mutex
	pending *baton.Checkpoint // signed, not yet taken by a commit

	size      atomic.Uint64
	signedOut atomic.Uint64
	lagging   atomic.Bool // Committed dropped leaves: catch up from the store

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// NewCheckpointer returns a checkpointer; Start runs it.
func NewCheckpointer(cfg CheckpointerConfig) (*Checkpointer, error) {
	if cfg.Store == nil || cfg.Key == nil {
		return nil, baton.Invalidf("checkpointer", "store and key are required")
	}
	if cfg.Key.Node != cfg.Lease.Holder {
		return nil, baton.Invalidf("checkpointer", "key of %s for a lease of %s", cfg.Key.Node, cfg.Lease.Holder)
	}
	if cfg.Every == 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = baton.SystemClock{}
	}
	log := cfg.Logger
	return &Checkpointer{cfg: cfg,
		log: sync.OnceValue(func() *slog.Logger { return log.With("topic", cfg.Lease.Topic, "epoch", cfg.Lease.Epoch) }),
		ch:  make(chan []baton.Leaf, committedQueue), done: make(chan struct{})}, nil
}

// Start runs the checkpointer until Close or the lease is lost.
func (c *Checkpointer) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(c.done)
		if c.cfg.OnStop != nil {
			defer c.cfg.OnStop()
		}
		if err := c.run(ctx); err != nil && ctx.Err() == nil {
			c.err = err
			if errors.Is(err, baton.ErrLeaseLost) {
				c.log().Info("checkpointer: fenced, stopping", "err", err)
			} else {
				c.log().Error("checkpointer stopped", "err", err)
			}
		}
	}()
}

// Close stops the checkpointer and waits for it. It is idempotent.
func (c *Checkpointer) Close() error {
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
	})
	return nil
}

// Done is closed once the checkpointer has stopped: after Close, or on
// its own when it was fenced or failed (Err says which).
func (c *Checkpointer) Done() <-chan struct{} { return c.done }

// Err is why the checkpointer stopped on its own (nil while it runs and
// after a plain Close). Read it after Done is closed.
func (c *Checkpointer) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Checkpoint hands the pending signed checkpoint (if any) to the
// publisher, to store with its next commit (publisher.Ledger).
func (c *Checkpointer) Checkpoint() *baton.Checkpoint {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	cp := c.pending
	c.pending = nil
	return cp
}

// Committed hands the leaves of one successful commit over, in commit
// order, with the checkpoint it stored. It never blocks: if the
// checkpointer is behind (say, still reading a long log from the store
// after a takeover) and its queue is full, the leaves are dropped and it
// reads them from the store when it catches up.
func (c *Checkpointer) Committed(leaves []baton.Leaf, cp *baton.Checkpoint) {
	if cp != nil {
		c.stored(cp.Size)
	}
	select {
	case c.ch <- leaves:
	case <-c.done:
	default:
		c.lagging.Store(true)
	}
}

func (c *Checkpointer) stored(size uint64) {
	for {
		old := c.signedOut.Load()
		if old >= size || c.signedOut.CompareAndSwap(old, size) {
			return
		}
	}
}

// Signed is the size of the last checkpoint this checkpointer stored.
func (c *Checkpointer) Signed() uint64 { return c.signedOut.Load() }

// Size is the number of leaves in the in-memory range.
func (c *Checkpointer) Size() uint64 { return c.size.Load() }

// logState is the log the checkpointer signs: its own compact range, or
// the node's Tree.
type logState interface {
	End() uint64
	// Append adds committed leaves; leaves already in are skipped.
	Append(leaves []baton.Leaf) error
	// Root is the root of the whole log.
	Root() (baton.Hash, error)
}

type memLog struct{ rng *compact.Range }

func (m *memLog) End() uint64 { return m.rng.End() }

func (m *memLog) Append(leaves []baton.Leaf) error {
	for _, l := range leaves {
		if l.Seq <= m.rng.End() {
			continue
		}
		if l.Seq != m.rng.End()+1 {
			return fmt.Errorf("leaf %d after %d leaves", l.Seq, m.rng.End())
		}
		if err := m.rng.Append(LeafHash(l), nil); err != nil {
			return err
		}
	}
	return nil
}

func (m *memLog) Root() (baton.Hash, error) {
	var root baton.Hash
	if m.rng.End() == 0 {
		copy(root[:], Hasher.EmptyRoot())
		return root, nil
	}
	h, err := m.rng.GetRootHash(nil)
	copy(root[:], h)
	return root, err
}

type treeLog struct {
	t        *Tree
	onAppend func()
}

func (l treeLog) End() uint64 { return l.t.Size() }

func (l treeLog) Append(leaves []baton.Leaf) error {
	if err := l.t.AppendFrom(leaves); err != nil {
		return err
	}
	if l.onAppend != nil {
		l.onAppend()
	}
	return nil
}

func (l treeLog) Root() (baton.Hash, error) {
	_, root, err := l.t.Latest()
	return root, err
}

func (c *Checkpointer) run(ctx context.Context) error {
	// Start from the store; a failed read is tried again (a store that
	// is briefly away at takeover must not cost the lease its ledger).
	for wait := c.cfg.Interval; ; wait = min(2*wait, 5*time.Second) {
		err := c.setup(ctx)
		if err == nil {
			break
		}
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		c.log().Warn("checkpointer: read the ledger from the store", "err", err, "retry_in", wait)
		t := c.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
	return c.loop(ctx)
}

// setup brings the log up to the latest checkpoint and checks its root,
// then up to the cursor.
func (c *Checkpointer) setup(ctx context.Context) error {
	topic := c.cfg.Lease.Topic
	st := c.cfg.Store
	var cur baton.Cursor
	// The cursor read at takeover will do: a copy grown past it since is
	// checked against a fresh read (sameHistory).
	if c.cfg.Cursor != nil {
		cur = *c.cfg.Cursor
		c.cfg.Cursor = nil // a setup tried again reads it
	} else {
		var err error
		if cur, err = st.Cursor(ctx, topic); err != nil {
			return readError{fmt.Errorf("checkpointer %s: read cursor: %w", topic, err)}
		}
	}
	if c.cfg.Tree != nil {
		c.log2 = treeLog{c.cfg.Tree, c.cfg.OnAppend}
	} else {
		c.log2 = &memLog{rangeFactory.NewEmptyRange(0)}
	}
	latest, err := st.Checkpoint(ctx, topic)
	switch {
	case errors.Is(err, baton.ErrNotFound):
	case err != nil:
		return readError{fmt.Errorf("checkpointer %s: read latest checkpoint: %w", topic, err)}
	default:
		c.signed = latest.Size
		if err := c.catchUp(ctx, latest.Size); err != nil {
			return err
		}
		var root baton.Hash
		if c.cfg.Tree != nil {
			root, err = c.cfg.Tree.Root(latest.Size)
		} else if c.log2.End() == latest.Size {
			root, err = c.log2.Root()
		}
		if err != nil {
			return err
		}
		if root != latest.Root {
			msg := fmt.Sprintf("ledger of %s: the leaves 1..%d hash to %s, but the latest checkpoint (epoch %d by %s) says %s",
				topic, latest.Size, root, latest.Epoch, latest.Node, latest.Root)
			if c.cfg.OnAlarm != nil {
				c.cfg.OnAlarm(msg)
			}
			return errors.New(msg)
		}
	}
	if err := c.halted(); err != nil {
		return err
	}
	if c.cfg.Tree != nil {
		if err := c.sameHistory(ctx, cur.Seq); err != nil {
			return err
		}
	}
	if err := c.catchUp(ctx, cur.Seq); err != nil {
		return err
	}
	c.log().Debug("checkpointer ready", "size", c.log2.End(), "signed", c.signed)
	return nil
}

// loop adds committed leaves, signs and stores checkpoints until ctx ends
// or the lease is lost.
//
// Its timers run only while there is work: tick while leaves are not
// signed yet (or the log lags the store), flush while a signed checkpoint
// waits for a commit. An idle topic whose checkpoint covers the cursor
// arms neither: it costs no wake-up and no read (docs/ledger.md).
func (c *Checkpointer) loop(ctx context.Context) error {
	clock := c.cfg.Clock
	tick := clock.NewTimer(c.cfg.Interval)
	tick.Stop()
	ticking := false
	// flush stores a checkpoint no commit took.
	flushAfter := min(c.cfg.Interval, 100*time.Millisecond)
	flush := clock.NewTimer(flushAfter)
	flush.Stop()
	defer tick.Stop()
	defer flush.Stop()
	for {
		if !ticking && (c.log2.End() > c.signed || c.lagging.Load()) {
			tick.Reset(c.cfg.Interval)
			ticking = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-flush.C():
			if cp := c.Checkpoint(); cp != nil {
				if err := c.store(ctx, cp); err != nil {
					return err
				}
			}
		case leaves := <-c.ch:
			if err := c.add(ctx, leaves); err != nil {
				if !c.transient(ctx, err) {
					return err
				}
				continue
			}
			if c.log2.End()-c.signed >= c.cfg.Every {
				if err := c.sign(); err != nil {
					return err
				}
				flush.Reset(flushAfter)
			}
		case <-tick.C():
			ticking = false
			if c.lagging.Swap(false) {
				cur, err := c.cfg.Store.Cursor(ctx, c.cfg.Lease.Topic)
				if err != nil {
					c.lagging.Store(true)
					c.log().Warn("checkpointer: read cursor", "err", err)
					continue
				}
				if err := c.catchUp(ctx, cur.Seq); err != nil {
					if !c.transient(ctx, err) {
						return err
					}
					continue
				}
			}
			if c.log2.End() > c.signed {
				if err := c.sign(); err != nil {
					return err
				}
				flush.Reset(flushAfter)
			}
		}
	}
}

// add appends one commit's leaves, reading any gap from the store first.
func (c *Checkpointer) add(ctx context.Context, leaves []baton.Leaf) error {
	if len(leaves) == 0 {
		return nil
	}
	if first := leaves[0].Seq; first > c.log2.End()+1 {
		if err := c.catchUp(ctx, first-1); err != nil {
			return err
		}
	}
	if err := c.log2.Append(leaves); err != nil {
		return fmt.Errorf("checkpointer %s: %w", c.cfg.Lease.Topic, err)
	}
	c.size.Store(c.log2.End())
	return nil
}

// readError is a failed read of the store: the store may be back on the
// next try, unlike a gap in what it holds.
type readError struct{ error }

func (e readError) Unwrap() error { return e.error }

// retryable says whether err is a failed read worth trying again (not one
// the store refused as invalid: that would fail again).
func retryable(err error) bool {
	var re readError
	return errors.As(err, &re) && !errors.Is(err, baton.ErrInvalid)
}

// transient says whether the loop can go on after err: a failed read
// leaves the log lagging (the next tick catches up from the store);
// anything else stops the checkpointer.
func (c *Checkpointer) transient(ctx context.Context, err error) bool {
	if !retryable(err) || ctx.Err() != nil {
		return false
	}
	c.lagging.Store(true)
	c.log().Warn("checkpointer: catch up from the store", "err", err)
	return true
}

// catchUp appends the store's leaves up to seq upto.
//
// With a Tree the log is shared: the witness appends to it too, so its end
// can move between any two reads of it. Each step reads the end once, and
// an empty read only fails if the end is still short of upto.
func (c *Checkpointer) catchUp(ctx context.Context, upto uint64) error {
	topic := c.cfg.Lease.Topic
	for {
		end := c.log2.End()
		if end >= upto {
			break
		}
		ls, err := c.cfg.Store.Leaves(ctx, topic, end, int(min(upto-end, 5000)))
		if err != nil {
			return readError{fmt.Errorf("checkpointer %s: read leaves after %d: %w", topic, end, err)}
		}
		if len(ls) == 0 {
			if c.log2.End() >= upto {
				break // the witness appended them meanwhile
			}
			return fmt.Errorf("checkpointer %s: the store has no leaf %d (cursor at %d)", topic, end+1, upto)
		}
		if err := c.log2.Append(ls); err != nil {
			return fmt.Errorf("checkpointer %s: %w (the ledger has a gap)", topic, err)
		}
	}
	c.size.Store(c.log2.End())
	return nil
}

// sign signs the range as it is and leaves the checkpoint pending for the
// next commit (replacing an older one no commit took).
func (c *Checkpointer) sign() error {
	if err := c.halted(); err != nil {
		return err
	}
	var size uint64
	var root baton.Hash
	var err error
	if c.cfg.Tree != nil {
		// One consistent (size, root) pair: the witness may append too.
		size, root, err = c.cfg.Tree.Latest()
	} else {
		size = c.log2.End()
		root, err = c.log2.Root()
	}
	if err != nil {
		return err
	}
	l := c.cfg.Lease
	cp, err := Sign(Body{Topic: l.Topic, Size: size, Root: root, Epoch: l.Epoch, Node: l.Holder}, c.cfg.Key)
	if err != nil {
		return err
	}
	c.pmu.Lock()
	c.pending = &cp
	c.pmu.Unlock()
	c.signed = cp.Size
	return nil
}

// store writes a checkpoint no commit took.
func (c *Checkpointer) store(ctx context.Context, cp *baton.Checkpoint) error {
	if err := c.cfg.Store.AddCheckpoint(ctx, *cp); err != nil {
		switch {
		case errors.Is(err, baton.ErrLeaseLost) || ctx.Err() != nil:
			return fmt.Errorf("checkpoint %s/%d: %w", cp.Topic, cp.Size, err)
		case errors.Is(err, baton.ErrInvalid):
			// A commit stored a checkpoint at least as large meanwhile.
			c.log().Debug("checkpoint not stored", "size", cp.Size, "err", err)
		default:
			// Transient (store unavailable): the next trigger signs again.
			c.log().Warn("store checkpoint", "size", cp.Size, "err", err)
			c.signed = min(c.signed, cp.Size-1)
		}
		return nil
	}
	c.stored(cp.Size)
	c.log().Debug("checkpoint stored", "size", cp.Size)
	return nil
}

// sameHistory checks that the node's copy and the store's ledger, whose
// last leaf is cursor, are one history: the copy's leaf at the shorter
// end is the store's. If not, the store lost writes the copy holds
// (docs/ledger.md, "Lost writes and re-anchoring"): signing on would
// sign a history the witnesses refuse, so the checkpointer stops, and the
// lease with it.
func (c *Checkpointer) sameHistory(ctx context.Context, cursor uint64) error {
	topic, t := c.cfg.Lease.Topic, c.cfg.Tree
	size := t.Size()
	if size > cursor {
		// The copy may have grown since cursor was read: the witness
		// mirrors the publisher's commits into it meanwhile. It holds
		// only committed leaves, so a cursor read after its size is at
		// least that size, unless the store lost writes.
		cur, err := c.cfg.Store.Cursor(ctx, topic)
		if err != nil {
			return readError{fmt.Errorf("checkpointer %s: read cursor: %w", topic, err)}
		}
		cursor = cur.Seq
	}
	m := min(size, cursor)
	if m == 0 {
		return nil
	}
	sh, ok, err := storeLeafHash(ctx, c.cfg.Store, topic, m)
	if err != nil {
		return readError{err}
	}
	ch, err := copyLeafHash(t, m)
	if err != nil {
		return err
	}
	var msg string
	switch {
	case size > cursor:
		msg = fmt.Sprintf("ledger of %s: the store's cursor is at %d, but this node's copy holds %d leaves (the store lost writes)", topic, cursor, size)
	case !ok || sh != ch:
		msg = fmt.Sprintf("ledger of %s: leaf %d of the store hashes to %s, this node's copy's to %s (the store lost writes)", topic, m, sh, ch)
	default:
		return nil
	}
	if c.cfg.OnAlarm != nil {
		c.cfg.OnAlarm(msg)
	}
	return errors.New(msg)
}

// halted is an error if the node's witness halts the topic (Halted).
func (c *Checkpointer) halted() error {
	if c.cfg.Halted == nil {
		return nil
	}
	if h := c.cfg.Halted(); h != nil {
		return fmt.Errorf("ledger of %s halted (%s): %s", c.cfg.Lease.Topic, h.Check, h.Message)
	}
	return nil
}
