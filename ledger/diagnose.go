package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// Diagnosis is where the store's ledger of a topic and one node's copy
// part, and what an operator can do about it (GET
// /v1/topics/{topic}/ledger/diagnose, `baton ledger diagnose`).
type Diagnosis struct {
	Topic string `json:"topic"`
	// Node is the node whose copy this is.
	Node string `json:"node"`
	// CopySize is the number of leaves in the node's copy; Accepted the
	// latest checkpoint its witness accepted (nil: none yet).
	CopySize uint64          `json:"copy_size"`
	Accepted *CheckpointInfo `json:"accepted,omitempty"`
	// Cursor is the store's cursor (its last leaf) and QueueLastSeq the
	// last seq of its queue.
	Cursor       baton.Cursor `json:"cursor"`
	QueueLastSeq uint64       `json:"queue_last_seq"`
	// StoreCheckpoint is the store's latest checkpoint, with the nodes
	// whose cosignatures verify (nil: the store has none).
	StoreCheckpoint *CheckpointInfo `json:"store_checkpoint,omitempty"`
	// Agreed is the last seq on which the store and the copy hold the same
	// leaf. Diverged: the copy holds leaves after Agreed that the store
	// does not hold alike, from FirstDivergent on, where the store's leaf
	// hashes to StoreLeaf (absent if it has none) and the copy's to
	// CopyLeaf.
	Agreed         uint64      `json:"agreed"`
	Diverged       bool        `json:"diverged"`
	FirstDivergent uint64      `json:"first_divergent,omitempty"`
	StoreLeaf      *baton.Hash `json:"store_leaf_hash,omitempty"`
	CopyLeaf       *baton.Hash `json:"copy_leaf_hash,omitempty"`
	// Halted is the witness's halt of the topic, if any.
	Halted *baton.LedgerHalt `json:"halted,omitempty"`
	// Reanchors are the topic's re-anchors in the store, oldest first,
	// each with whether its signature verifies.
	Reanchors []DiagnosedReanchor `json:"reanchors,omitempty"`
	// Advice says what the operator can do, in order.
	Advice []string `json:"advice"`
}

// CheckpointInfo names a checkpoint.
type CheckpointInfo struct {
	Size      uint64     `json:"size"`
	Root      baton.Hash `json:"root"`
	Epoch     uint64     `json:"epoch"`
	Node      string     `json:"node"`
	At        time.Time  `json:"at,omitzero"`
	Cosigners []string   `json:"cosigners,omitempty"`
}

// DiagnosedReanchor is a stored re-anchor as a node checked it.
type DiagnosedReanchor struct {
	ReanchorBody
	Problem string `json:"problem,omitempty"`
}

// Diagnose compares the store's ledger of topic with this node's copy.
// It reads O(log n) leaves of the store and the copy.
func (w *Witness) Diagnose(ctx context.Context, topic string) (Diagnosis, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return Diagnosis{}, err
	}
	st := w.cfg.Store
	d := Diagnosis{Topic: topic, Node: w.cfg.Key.Node, CopySize: tw.tree.Size(), Halted: tw.halted()}
	tw.mu.Lock()
	if tw.hasCP {
		d.Accepted = &CheckpointInfo{Size: tw.latest.Size, Root: tw.latest.Root, Epoch: tw.latest.Epoch, Node: tw.latest.Node, At: tw.latest.At}
	}
	tw.mu.Unlock()
	if d.Cursor, err = st.Cursor(ctx, topic); err != nil {
		return Diagnosis{}, err
	}
	if q, ok := st.(interface {
		Topic(ctx context.Context, topic string) (baton.TopicInfo, error)
	}); ok {
		if info, err := q.Topic(ctx, topic); err == nil {
			d.QueueLastSeq = info.LastSeq
		}
	}
	keys, err := tw.keys(ctx, w.cfg.Key.Node, true)
	if err != nil {
		return Diagnosis{}, err
	}
	if cp, err := st.Checkpoint(ctx, topic); err == nil {
		d.StoreCheckpoint = &CheckpointInfo{Size: cp.Size, Root: cp.Root, Epoch: cp.Epoch, Node: cp.Node, At: cp.At}
		if v, err := Verify(cp, keys); err == nil {
			d.StoreCheckpoint.Cosigners = v.Cosigners
		}
	}
	dv, err := findDivergence(ctx, st, topic, tw.tree, d.Cursor.Seq)
	if err != nil {
		return Diagnosis{}, err
	}
	d.Agreed, d.Diverged, d.FirstDivergent = dv.agreed, dv.first > 0, dv.first
	if d.Diverged {
		d.CopyLeaf = &dv.copyLeaf
		if dv.storeLeaf != (baton.Hash{}) {
			d.StoreLeaf = &dv.storeLeaf
		}
	}
	rs, err := st.Reanchors(ctx, topic)
	if err != nil {
		return Diagnosis{}, err
	}
	for _, r := range rs {
		b, err := VerifyReanchor(r, keys)
		dr := DiagnosedReanchor{ReanchorBody: b}
		if err != nil {
			dr.Problem = err.Error()
		}
		d.Reanchors = append(d.Reanchors, dr)
	}
	d.Advice = advice(d)
	return d, nil
}

func advice(d Diagnosis) []string {
	if !d.Diverged {
		if d.Halted != nil {
			return []string{"the copy agrees with the store now; the witness looks again on the topic's next round"}
		}
		return []string{"nothing to do: this node's copy is a prefix of the store's ledger"}
	}
	lost := fmt.Sprintf("seqs %d..%d", d.Agreed+1, d.CopySize)
	out := []string{
		fmt.Sprintf("the store lost the leaves of %s that this node's copy holds (a failover without wait_replicas, or a restored backup)", lost),
		"if the store can still be brought back whole (the old master, a newer backup), do that: the topic then resumes by itself",
		fmt.Sprintf("otherwise accept the loss: `baton ledger reanchor %s --from %d --reason TEXT` (admin); every witness checks it, rebuilds its copy from the store and resumes", d.Topic, d.Agreed),
	}
	if d.Cursor.Seq > d.Agreed {
		out = append(out, fmt.Sprintf("items %d..%d that the store published after the loss stand (they were published again under the same seqs): terminals that saw the lost %s may hold other items under them", d.Agreed+1, d.Cursor.Seq, lost))
	}
	return out
}

// Reanchor records, signed by this node, that topic's ledger stands as the
// store holds it from seq from on: the witnessed leaves after it are lost
// (ReanchorBody). by names who asked (a token's subject), reason why. It
// refuses (ErrInvalid) unless this node's copy and the store part after
// exactly from: a re-anchor from any other seq would lift no witness's
// halt. Every witness then checks it against its own copy
// (witness_halt.go).
func (w *Witness) Reanchor(ctx context.Context, topic string, from uint64, by, reason string) (ReanchorBody, error) {
	if err := ValidReason(reason); err != nil {
		return ReanchorBody{}, err
	}
	d, err := w.Diagnose(ctx, topic)
	if err != nil {
		return ReanchorBody{}, err
	}
	switch {
	case !d.Diverged:
		return ReanchorBody{}, baton.Invalidf("from", "the store's ledger of %s and this node's copy agree: nothing to re-anchor", topic)
	case from != d.Agreed:
		return ReanchorBody{}, baton.Invalidf("from", "%d: the store and this node's copy of %s agree up to seq %d: re-anchor from %d", from, topic, d.Agreed, d.Agreed)
	}
	tw, err := w.topic(topic)
	if err != nil {
		return ReanchorBody{}, err
	}
	b := ReanchorBody{Topic: topic, Seq: from, Node: w.cfg.Key.Node, By: oneWord(by), At: w.clock.Now(), Reason: reason}
	if b.Root, err = tw.tree.Root(from); err != nil {
		return ReanchorBody{}, err
	}
	b.LostSize = d.CopySize
	if b.LostRoot, err = tw.tree.Root(d.CopySize); err != nil {
		return ReanchorBody{}, err
	}
	r, err := SignReanchor(b, w.cfg.Key)
	if err != nil {
		return ReanchorBody{}, err
	}
	if err := w.cfg.Store.AddReanchor(ctx, r); err != nil {
		return ReanchorBody{}, err
	}
	w.log.Warn("ledger re-anchor recorded", "topic", topic, "seq", from, "lost_size", b.LostSize, "by", b.By)
	w.smu.Lock()
	w.readyLocked(tw)
	w.smu.Unlock()
	return b, nil
}

// oneWord makes a subject fit the note's "by" line.
func oneWord(s string) string {
	s = strings.Join(strings.Fields(s), "_")
	if s == "" {
		return "operator"
	}
	return s
}
