package memstore

import (
	"context"
	"maps"
	"slices"

	"github.com/baton-pub/baton"
)

// commitSnapshot moves the snapshot with commit c, whose items are in the
// queue (Commit checked them): each becomes its id's row, a tombstone
// removes it (baton.Snapshots). A new or removed id drops the sorted ids,
// which the next read sorts again. Callers hold mu.
func (t *topic) commitSnapshot(c baton.Commit) {
	if t.snap == nil {
		t.snap = make(map[string]baton.Published)
	}
	for _, ci := range c.Items {
		it := t.items[ci.Seq-t.trimmed-1]
		_, had := t.snap[it.ID]
		if it.Deleted {
			delete(t.snap, it.ID)
		} else {
			t.snap[it.ID] = baton.Published{Item: copyItem(it), Epoch: c.Epoch, Publisher: c.Holder, PublishedAt: c.At}
		}
		if had == it.Deleted {
			t.snapIDs = nil
		}
	}
}

// Snapshot returns the rows with id > afterID at the cursor's seq.
func (s *Store) Snapshot(ctx context.Context, name, afterID string, limit int) (uint64, []baton.Published, string, error) {
	d, err := s.begin(ctx, "snapshot", baton.ValidateSnapshot(name, afterID, limit))
	if err != nil {
		return 0, nil, "", err
	}
	defer d.mu.Unlock()
	t := d.existing(name)
	if t == nil {
		return 0, nil, "", nil
	}
	if t.snapIDs == nil && len(t.snap) > 0 {
		t.snapIDs = slices.Sorted(maps.Keys(t.snap))
	}
	i, found := slices.BinarySearch(t.snapIDs, afterID)
	if found {
		i++
	}
	ids := t.snapIDs[i:]
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]baton.Published, len(ids))
	for k, id := range ids {
		p := t.snap[id]
		p.Item = copyItem(p.Item)
		out[k] = p
	}
	return t.cursor.Seq, out, next, nil
}
