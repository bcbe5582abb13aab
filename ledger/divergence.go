package ledger

import (
	"bytes"
	"context"
	"fmt"

	"github.com/baton-pub/baton"
)

// Where a store's ledger and a node's copy part (docs/ledger.md, "Lost
// writes and re-anchoring"). Both hold one log that grew by appends, so
// once they differ at a seq they differ at every later one (a leaf names
// its epoch, publisher and publish time): the last seq on which they agree
// is found by bisection, O(log n) reads of one leaf.

// divergence is where the store's ledger and a copy part.
type divergence struct {
	// agreed is the last seq on which both hold the same leaf.
	agreed uint64
	// first is the first seq the copy holds that the store does not hold
	// alike (0: the copy is a prefix of the store's ledger); storeLeaf and
	// copyLeaf are their leaf hashes (storeLeaf zero if the store has none).
	first               uint64
	storeLeaf, copyLeaf baton.Hash
}

// storeLeafHash reads the store's leaf seq: its Merkle leaf hash, or
// false if the store has no leaf seq.
func storeLeafHash(ctx context.Context, st Store, topic string, seq uint64) (baton.Hash, bool, error) {
	ls, err := st.Leaves(ctx, topic, seq-1, 1)
	if err != nil {
		return baton.Hash{}, false, fmt.Errorf("read leaf %d of %s: %w", seq, topic, err)
	}
	if len(ls) == 0 || ls[0].Seq != seq {
		return baton.Hash{}, false, nil
	}
	return toHash(LeafHash(ls[0])), true, nil
}

func copyLeafHash(t *Tree, seq uint64) (baton.Hash, error) {
	l, _, err := t.Entry(seq)
	if err != nil {
		return baton.Hash{}, err
	}
	return toHash(LeafHash(l)), nil
}

// findDivergence compares a copy with the store's ledger, whose last leaf
// is storeSize (the cursor).
func findDivergence(ctx context.Context, st Store, topic string, t *Tree, storeSize uint64) (divergence, error) {
	size := t.Size()
	same := func(seq uint64) (bool, error) {
		if seq == 0 {
			return true, nil
		}
		sh, ok, err := storeLeafHash(ctx, st, topic, seq)
		if err != nil || !ok {
			return false, err
		}
		ch, err := copyLeafHash(t, seq)
		return err == nil && sh == ch, err
	}
	hi := min(size, storeSize)
	ok, err := same(hi)
	if err != nil {
		return divergence{}, err
	}
	var d divergence
	if ok {
		d.agreed = hi
	} else {
		// same(lo) and !same(hi) throughout.
		lo := uint64(0)
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			ok, err := same(mid)
			if err != nil {
				return divergence{}, err
			}
			if ok {
				lo = mid
			} else {
				hi = mid
			}
		}
		d.agreed = lo
	}
	if d.agreed == size {
		return d, nil // the copy is a prefix of the store's ledger
	}
	d.first = d.agreed + 1
	if d.copyLeaf, err = copyLeafHash(t, d.first); err != nil {
		return divergence{}, err
	}
	if d.storeLeaf, _, err = storeLeafHash(ctx, st, topic, d.first); err != nil {
		return divergence{}, err
	}
	return d, nil
}

// sameEncoding reports whether two leaves are the same leaf.
func sameEncoding(a, b baton.Leaf) bool { return bytes.Equal(EncodeLeaf(a), EncodeLeaf(b)) }
