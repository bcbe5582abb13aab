package ledger

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
)

// Proof is an inclusion proof of one published item's leaf in a checkpoint.
type Proof struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
	// Entry is the leaf; Leaf its canonical encoding, whose RFC 6962 leaf
	// hash is LeafHash.
	Entry     baton.Leaf   `json:"entry"`
	Leaf      []byte       `json:"leaf"`
	LeafHash  baton.Hash   `json:"leaf_hash"`
	LeafIndex uint64       `json:"leaf_index"`
	TreeSize  uint64       `json:"tree_size"`
	Hashes    []baton.Hash `json:"proof"`
	// Checkpoint is the signed note (with cosignature lines) of TreeSize.
	Checkpoint string `json:"checkpoint"`
}

// Proof proves the leaf of seq in the latest checkpoint this node accepted.
// It reads O(log n) hashes from the node's copy, and the checkpoint's
// cosignatures from the store (refreshed).
func (w *Witness) Proof(topic string, seq uint64) (Proof, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return Proof{}, err
	}
	if seq == 0 {
		return Proof{}, baton.Invalidf("seq", "seqs start at 1")
	}
	cp, ok := tw.refreshed()
	if !ok || seq > cp.Size {
		return Proof{}, fmt.Errorf("seq %d of %s is not in a checkpoint yet (latest covers 1..%d): %w", seq, topic, cp.Size, baton.ErrNotFound)
	}
	entry, enc, err := tw.tree.Entry(seq)
	if err != nil {
		return Proof{}, err
	}
	hs, err := tw.tree.InclusionProof(seq-1, cp.Size)
	if err != nil {
		return Proof{}, err
	}
	p := Proof{Topic: topic, Seq: seq, Entry: entry, Leaf: enc, LeafIndex: seq - 1, TreeSize: cp.Size,
		Hashes: toHashes(hs), Checkpoint: string(WithCosignatures(cp))}
	copy(p.LeafHash[:], Hasher.HashLeaf(enc))
	return p, nil
}

func toHashes(hs [][]byte) []baton.Hash {
	out := make([]baton.Hash, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out
}

func fromHashes(hs []baton.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// Consistency is a proof that the log of size From is a prefix of To.
type Consistency struct {
	Topic    string       `json:"topic"`
	From     uint64       `json:"from"`
	To       uint64       `json:"to"`
	FromRoot baton.Hash   `json:"from_root"`
	ToRoot   baton.Hash   `json:"to_root"`
	Hashes   []baton.Hash `json:"proof"`
}

// Consistency proves that the first from leaves are a prefix of the first
// to leaves (to = 0: the latest accepted checkpoint's size). Both sizes
// must be covered by the latest checkpoint this node accepted.
func (w *Witness) Consistency(topic string, from, to uint64) (Consistency, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return Consistency{}, err
	}
	tw.mu.Lock()
	cp, ok := tw.latest, tw.hasCP
	tw.mu.Unlock()
	if !ok {
		return Consistency{}, fmt.Errorf("no checkpoint of %s accepted yet: %w", topic, baton.ErrNotFound)
	}
	if to == 0 {
		to = cp.Size
	}
	switch {
	case from == 0:
		return Consistency{}, baton.Invalidf("from", "must be at least 1")
	case from > to:
		return Consistency{}, baton.Invalidf("from", "%d is above to=%d", from, to)
	case to > cp.Size:
		return Consistency{}, fmt.Errorf("size %d of %s is not in a checkpoint yet (latest is %d): %w", to, topic, cp.Size, baton.ErrNotFound)
	}
	hs, err := tw.tree.ConsistencyProof(from, to)
	if err != nil {
		return Consistency{}, err
	}
	c := Consistency{Topic: topic, From: from, To: to, Hashes: toHashes(hs)}
	if c.FromRoot, err = tw.tree.Root(from); err != nil {
		return c, err
	}
	if c.ToRoot, err = tw.tree.Root(to); err != nil {
		return c, err
	}
	return c, nil
}

// VerifyProof checks a proof offline: the checkpoint must carry at least
// one signature that verifies with the pinned keys, the entry must be the
// asked item's leaf, and the inclusion proof must lead from its leaf hash to
// the checkpoint's root (proof.VerifyInclusion). It returns the nodes whose
// signatures verified.
func VerifyProof(p Proof, topic string, seq uint64, pinned *Keys) ([]string, error) {
	body, signers, err := OpenPinned([]byte(p.Checkpoint), pinned)
	if err != nil {
		return nil, err
	}
	if body.Topic != topic {
		return nil, fmt.Errorf("checkpoint is for topic %s, not %s", body.Topic, topic)
	}
	if body.Size != p.TreeSize || seq > body.Size {
		return nil, fmt.Errorf("checkpoint size %d does not cover seq %d (proof says tree size %d)", body.Size, seq, p.TreeSize)
	}
	l, err := DecodeLeaf(p.Leaf)
	if err != nil {
		return nil, err
	}
	if l.Topic != topic || l.Seq != seq {
		return nil, fmt.Errorf("the entry is leaf %s/%d, not %s/%d", l.Topic, l.Seq, topic, seq)
	}
	if l.ItemHash != p.Entry.ItemHash || l.Epoch != p.Entry.Epoch || l.Publisher != p.Entry.Publisher {
		return nil, errors.New("the entry's fields do not match its encoding")
	}
	if err := proof.VerifyInclusion(Hasher, seq-1, body.Size, Hasher.HashLeaf(p.Leaf), fromHashes(p.Hashes), body.Root[:]); err != nil {
		return nil, fmt.Errorf("inclusion proof of seq %d in checkpoint %d: %w", seq, body.Size, err)
	}
	return signers, nil
}
