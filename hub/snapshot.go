package hub

import (
	"context"
	"fmt"

	"github.com/baton-pub/baton"
)

// DefaultSnapshotPage is how many snapshot rows ReadSnapshot asks the store
// for at once.
const DefaultSnapshotPage = 1000

// ReadSnapshot reads topic's snapshot (baton.Snapshots) page by page and
// hands emit, in order, items that together are the topic's state as of
// the seq it returns: applied in the order given (an item sets its id's
// value, a tombstone removes the id), they leave every id at its latest
// item of seq <= seq. A consumer then follows the topic after seq (the
// hub's Subscribe(ctx, topic, seq)) with no gap and no duplicate.
//
// Pages are read at the seqs they name, which move on while commits go on
// (docs/design.md, "Snapshots"). ReadSnapshot stitches them: when page k is
// read at a later seq than the state emitted so far (ids up to page k-1's
// last, as of seq S), it first emits the items published in (S, seq of
// page k] of those ids, read from the queue, then page k: every id emitted
// is then as of page k's seq. So an id may be emitted more than once,
// the later replacing the earlier; emit gets at most page items a call.
//
// It returns an error (and the caller starts again) if the topic was
// deleted or its cursor moved back meanwhile, or if the queue no longer
// keeps the items of a catch-up (baton.ErrTrimmed: retention trimmed them
// within one page's read).
func ReadSnapshot(ctx context.Context, st baton.Store, topic string, page int, emit func([]baton.Published) error) (uint64, error) {
	if page <= 0 {
		page = DefaultSnapshotPage
	}
	var (
		seq   uint64 // the seq of the state emitted so far
		after string // the ids <= after are emitted ("" and first: none)
		first = true
	)
	for {
		s, items, next, err := st.Snapshot(ctx, topic, after, page)
		if err != nil {
			return 0, fmt.Errorf("read snapshot of %s: %w", topic, err)
		}
		if s < seq {
			return 0, fmt.Errorf("read snapshot of %s: cursor went back from %d to %d (topic deleted?): %w", topic, seq, s, baton.ErrCursorMoved)
		}
		if !first && s > seq {
			if err := catchUp(ctx, st, topic, seq, s, after, page, emit); err != nil {
				return 0, err
			}
		}
		seq, first = s, false
		if len(items) > 0 {
			if err := emit(items); err != nil {
				return 0, err
			}
		}
		if next == "" {
			return seq, nil
		}
		after = next
	}
}

// catchUp emits the items published in (from, to] whose ids are <= upto:
// those ReadSnapshot emitted as of from.
func catchUp(ctx context.Context, st baton.Store, topic string, from, to uint64, upto string, page int, emit func([]baton.Published) error) error {
	for pos := from; pos < to; {
		ps, err := st.Published(ctx, topic, pos, int(min(to-pos, uint64(page))))
		if err != nil {
			return fmt.Errorf("read snapshot of %s: catch up after %d: %w", topic, pos, err)
		}
		if len(ps) == 0 {
			return fmt.Errorf("read snapshot of %s: items %d to %d not published (cursor went back?): %w", topic, pos+1, to, baton.ErrCursorMoved)
		}
		keep := ps[:0]
		for _, p := range ps {
			if p.Seq <= to && p.ID <= upto {
				keep = append(keep, p)
			}
		}
		pos = ps[len(ps)-1].Seq
		if len(keep) > 0 {
			if err := emit(keep); err != nil {
				return err
			}
		}
	}
	return nil
}
