package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-pub/baton"
)

// mirror appends the store's new leaves to the copy.
func (tw *topicWitness) mirror(ctx context.Context) error {
	for {
		size := tw.tree.Size()
		ls, err := tw.w.cfg.Store.Leaves(ctx, tw.topic, size, 5000)
		if err != nil {
			return err
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
