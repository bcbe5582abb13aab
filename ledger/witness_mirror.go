package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-pub/baton"
)

// mirror appends the store's new leaves to the copy. Each read starts at
// the copy's last leaf, which the store must still hold alike: if it does
// not, the store lost writes the copy holds, and the topic halts
// (witness_halt.go).
func (tw *topicWitness) mirror(ctx context.Context) error {
	for {
		size := tw.tree.Size()
		ls, err := tw.w.cfg.Store.Leaves(ctx, tw.topic, max(size, 1)-1, 5000)
		if err != nil {
			return err
		}
		if size > 0 {
			if err := tw.sameLast(ctx, size, ls); err != nil {
				return err
			}
			if len(ls) > 0 && ls[0].Seq == size {
				ls = ls[1:]
			}
		}
		if len(ls) == 0 {
			return nil
		}
		if err := tw.appendChecked(ls); err != nil {
			return err
		}
	}
}

// appendChecked appends the next leaves to the copy, raising an alarm for
// a gap or an epoch going back.
func (tw *topicWitness) appendChecked(ls []baton.Leaf) error {
	size := tw.tree.Size()
	for len(ls) > 0 && ls[0].Seq <= size {
		ls = ls[1:] // appended meanwhile by this node's checkpointer
	}
	if len(ls) == 0 {
		return nil
	}
	for i, l := range ls {
		want := size + 1 + uint64(i)
		if l.Seq != want || l.Topic != tw.topic {
			if tw.gapAt != want { // one alarm per gap, not one per poll
				tw.gapAt = want
				tw.alarm(fmt.Sprintf("leaf %d: the store gives seq %d of topic %s (the ledger has a gap or is out of order)", want, l.Seq, l.Topic))
			}
			ls = ls[:i]
			break
		}
		if l.Epoch < tw.lastEpoch {
			tw.alarm(fmt.Sprintf("leaf %d: epoch %d after epoch %d: epochs went back (two publishers overlapped)", l.Seq, l.Epoch, tw.lastEpoch))
		}
		tw.lastEpoch = max(tw.lastEpoch, l.Epoch)
	}
	if len(ls) == 0 {
		return errors.New("no leaf to append")
	}
	return tw.tree.AppendFrom(ls)
}

// sameLast checks that the store's leaves read after size-1 (ls) begin
// with the copy's last leaf, size; it halts the topic if the store has no
// leaf there or another one.
func (tw *topicWitness) sameLast(ctx context.Context, size uint64, ls []baton.Leaf) error {
	if len(ls) == 0 {
		return tw.haltOn(ctx, baton.HaltCursorBehind, fmt.Sprintf("the store's ledger has no leaf %d, but this node's copy has %d leaves", size, size))
	}
	if ls[0].Seq != size {
		return nil // a gap: appendChecked raises its alarm
	}
	mine, _, err := tw.tree.Entry(size)
	if err != nil {
		return err
	}
	if !sameEncoding(mine, ls[0]) {
		return tw.haltOn(ctx, baton.HaltLeafMismatch, fmt.Sprintf("leaf %d: the store's hashes to %s, this node's copy's to %s",
			size, toHash(LeafHash(ls[0])), toHash(LeafHash(mine))))
	}
	return nil
}
