package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
)

// check verifies every checkpoint newer than the last one accepted that
// the copy covers, then cosigns the latest accepted if it is time.
func (tw *topicWitness) check(ctx context.Context) error {
	if err := tw.checkNew(ctx); err != nil {
		return err
	}
	if err := tw.cosign(ctx); err != nil {
		return err
	}
	// The state is synced at most once per CosignEvery (and before every
	// cosignature): after a crash, an older accepted checkpoint is as good
	// a starting point.
	if tw.dirty && tw.w.clock.Now().Sub(tw.lastSave) >= tw.w.cfg.CosignEvery {
		return tw.saveState()
	}
	return nil
}

func (tw *topicWitness) checkNew(ctx context.Context) error {
	if tw.recheck && tw.tree.Size() >= tw.state.Size {
		tw.recheck = false
		root, err := tw.tree.Root(tw.state.Size)
		if err != nil {
			return err
		}
		if root != tw.state.Root {
			tw.alarm(fmt.Sprintf("the store's leaves 1..%d hash to %s, but this node accepted root %s for them before (the ledger was rewritten)",
				tw.state.Size, root, tw.state.Root))
		}
	}
	// One read gives the checkpoint last accepted, read again (it must not
	// have changed, nor gone: the store lost writes, witness_halt.go), and
	// every newer one, oldest first: the latest is the last of them. A
	// state from a re-anchor has no checkpoint of its size to read.
	st := tw.w.cfg.Store
	reread := tw.state.Size > 0 && !tw.state.Reanchor
	after := tw.state.Size
	if reread {
		after--
	}
	for {
		cps, err := st.Checkpoints(ctx, tw.topic, after, checkpointsPage)
		if err != nil {
			return err
		}
		full := len(cps) == checkpointsPage
		if reread {
			reread = false
			if len(cps) == 0 || cps[0].Size != tw.state.Size {
				return tw.haltOn(ctx, baton.HaltCheckpointLost, fmt.Sprintf("the store no longer has checkpoint %d (root %s, epoch %d by %s) that this node accepted",
					tw.state.Size, tw.state.Root, tw.state.Epoch, tw.state.Node))
			}
			tw.sameSize(cps[0])
			if cps[0].Root == tw.state.Root {
				tw.setLatest(cps[0])
			}
			after, cps = cps[0].Size, cps[1:]
		}
		for _, cp := range cps {
			if cp.Size > tw.tree.Size() {
				return nil // not mirrored yet: next round
			}
			after = cp.Size
			if tw.refused[cp.Size] {
				continue
			}
			if err := tw.verify(ctx, cp); err != nil {
				if storeAway(ctx, err) {
					// Not a verdict on the checkpoint: the store could
					// not be read. The round is tried again.
					return err
				}
				tw.refused[cp.Size] = true
				tw.alarm(fmt.Sprintf("refused checkpoint %d (epoch %d by %s): %v", cp.Size, cp.Epoch, cp.Node, err))
				continue
			}
			if err := tw.accept(ctx, cp); err != nil {
				return err
			}
		}
		if !full {
			return nil
		}
	}
}

// checkpointsPage is how many checkpoints a witness reads at a time.
const checkpointsPage = 100

func (tw *topicWitness) verify(ctx context.Context, cp baton.Checkpoint) error {
	keys, err := tw.keys(ctx, cp.Node, false)
	if err != nil {
		return err
	}
	if _, err := Verify(cp, keys); err != nil {
		if !errors.Is(err, ErrBadSignature) {
			return err
		}
		if keys, err = tw.keys(ctx, cp.Node, true); err != nil {
			return err
		}
		if _, err := Verify(cp, keys); err != nil {
			return err
		}
	}
	if cp.Epoch < tw.state.Epoch {
		return fmt.Errorf("epoch %d is below epoch %d of checkpoint %d: epochs went back", cp.Epoch, tw.state.Epoch, tw.state.Size)
	}
	h, err := tw.signer(ctx, cp)
	if err != nil {
		return err
	}
	if h != cp.Node {
		if h == "" {
			return fmt.Errorf("no lease of epoch %d is on record", cp.Epoch)
		}
		return fmt.Errorf("signed by %s, but the lease of epoch %d was held by %s", cp.Node, cp.Epoch, h)
	}
	root, err := tw.tree.Root(cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return fmt.Errorf("root %s, but this node's copy of leaves 1..%d hashes to %s", cp.Root, cp.Size, root)
	}
	if tw.state.Size > 0 {
		p, err := tw.tree.ConsistencyProof(tw.state.Size, cp.Size)
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(Hasher, tw.state.Size, cp.Size, p, tw.state.Root[:], cp.Root[:]); err != nil {
			return fmt.Errorf("not consistent with checkpoint %d this node accepted: %v", tw.state.Size, err)
		}
	}
	if l, _, err := tw.tree.Entry(cp.Size); err == nil && l.Epoch > cp.Epoch {
		return fmt.Errorf("covers leaf %d of the later epoch %d", cp.Size, l.Epoch)
	}
	return nil
}

func (tw *topicWitness) accept(ctx context.Context, cp baton.Checkpoint) error {
	tw.state = witnessState{Size: cp.Size, Root: cp.Root, Epoch: cp.Epoch, Node: cp.Node}
	tw.dirty = true
	tw.seen[cp.Size] = cp.Root
	if len(tw.seen) > 1024 {
		for s := range tw.seen {
			if s < cp.Size {
				delete(tw.seen, s)
			}
			if len(tw.seen) <= 512 {
				break
			}
		}
	}
	tw.setLatest(cp)
	return nil
}

// sameSize raises the alarm for a checkpoint whose size this node saw
// before with another root: the signer equivocated, or the store was
// rewritten. One alarm per distinct root.
func (tw *topicWitness) sameSize(cp baton.Checkpoint) {
	r, ok := tw.seen[cp.Size]
	if !ok || r == cp.Root || tw.rewritten[cp.Root] {
		return
	}
	tw.rewritten[cp.Root] = true
	tw.alarm(fmt.Sprintf("checkpoint %d: root %s (epoch %d by %s), but this node saw root %s for that size before (equivocation or a rewritten checkpoint)",
		cp.Size, cp.Root, cp.Epoch, cp.Node, r))
}

// keys returns the registered keys, re-reading them if node has none or,
// with refresh, if they were last read over 10s ago (a node that lost its
// data dir registers a new key).
func (tw *topicWitness) keys(ctx context.Context, node string, refresh bool) (*Keys, error) {
	w := tw.w
	w.keysMu.Lock()
	defer w.keysMu.Unlock()
	if !w.keys.Has(node) || refresh && w.clock.Now().Sub(w.keysAt) > 10*time.Second {
		nks, err := w.cfg.Store.NodeKeys(ctx)
		if err != nil {
			return nil, err
		}
		w.keys, w.keysAt = NewKeys(nks), w.clock.Now()
	}
	return w.keys, nil
}

// signer returns who held the lease of cp's epoch ("" if unknown). The
// copy's leaf at cp's size names it when that leaf is of cp's epoch: a
// commit writes its holder into its leaves, fenced by the lease as the
// lock's records are, so no read of the store is needed. A checkpoint
// that covers no leaf of its own epoch (a holder that signed before it
// published) is looked up in the lock and its records.
func (tw *topicWitness) signer(ctx context.Context, cp baton.Checkpoint) (string, error) {
	if l, _, err := tw.tree.Entry(cp.Size); err == nil && l.Epoch == cp.Epoch {
		return l.Publisher, nil
	}
	return tw.holder(ctx, cp.Epoch)
}

// holder returns who held the lease of epoch ("" if unknown).
func (tw *topicWitness) holder(ctx context.Context, epoch uint64) (string, error) {
	if h, ok := tw.holders[epoch]; ok {
		return h, nil
	}
	st := tw.w.cfg.Store
	lock, err := st.Lock(ctx, tw.topic)
	if err != nil {
		return "", err
	}
	if lock.Lease.Epoch > 0 {
		tw.holders[lock.Lease.Epoch] = lock.Lease.Holder
	}
	if lock.Lease.Epoch != epoch {
		recs, err := st.Handovers(ctx, tw.topic, 10000)
		if err != nil {
			return "", err
		}
		for _, r := range recs {
			tw.holders[r.Epoch] = r.Holder
		}
	}
	return tw.holders[epoch], nil
}

// storeAway reports whether err says only that the store could not be read
// (unavailable, closed, or this node shutting down), not that a checkpoint
// is wrong: a witness raises no alarm for that.
func storeAway(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, baton.ErrUnavailable) || errors.Is(err, baton.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
