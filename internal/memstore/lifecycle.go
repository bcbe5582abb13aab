package memstore

import (
	"context"
	"fmt"

	"github.com/baton-pub/baton"
)

// DeleteTopic deletes a topic (see baton.Lifecycle): what it keeps is the
// lock's epoch and, unless opts.Ledger, the ledger with its release
// records and the cursor, its head, which a topic of the same name created
// later continues from.
func (s *Store) DeleteTopic(ctx context.Context, name string, opts baton.DeleteOptions) (baton.Deletion, error) {
	d, err := s.begin(ctx, "delete topic", baton.ValidateDelete(name))
	if err != nil {
		return baton.Deletion{}, err
	}
	defer d.mu.Unlock()
	t := d.existing(name)
	if t == nil {
		return baton.Deletion{}, fmt.Errorf("delete topic %s: %w", name, baton.ErrNotFound)
	}
	del := baton.Deletion{Topic: name, Items: len(t.items), Epoch: t.lease.Epoch, LedgerDeleted: opts.Ledger}
	for _, it := range t.items {
		if it.Seq > t.cursor.Seq {
			del.Unpublished++
		}
	}
	// A lease not yet recorded ends here, with its one record: the delete's
	// if it was live, its expiry's if it had lapsed.
	if now := d.now(); t.lease.Epoch > 0 && !t.recorded {
		if d.live(t, now) {
			d.record(t, baton.ReasonDeleted, now, baton.SignalLock)
		} else {
			d.recordExpired(t, now)
		}
	}
	t.items = nil
	t.byMsgID = make(map[string]baton.Receipt)
	t.byHash = make(map[baton.Hash]uint64)
	t.retention = baton.Retention{}
	t.snap, t.snapIDs = nil, nil
	if opts.Ledger {
		t.cursor, t.leaves, t.cps, t.records = baton.Cursor{}, nil, nil, nil
		delete(d.reanchors, name)
	}
	t.last, t.trimmed = t.cursor.Seq, t.cursor.Seq
	del.LedgerSize = t.cursor.Seq
	t.deleted = true
	d.sig.Notify(name, baton.SignalTopic|baton.SignalLock|baton.SignalAppend|baton.SignalCommit)
	return del, nil
}

// SetRetention replaces the topic's retention.
func (s *Store) SetRetention(ctx context.Context, name string, r baton.Retention) error {
	d, err := s.begin(ctx, "set retention", baton.ValidateRetention(name, r))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	t := d.existing(name)
	if t == nil {
		return fmt.Errorf("set retention of %s: %w", name, baton.ErrNotFound)
	}
	t.retention = r
	d.sig.Notify(name, baton.SignalLock)
	return nil
}

// Retention reads the topic's retention.
func (s *Store) Retention(ctx context.Context, name string) (baton.Retention, error) {
	d, err := s.begin(ctx, "retention", baton.ValidTopic(name))
	if err != nil {
		return baton.Retention{}, err
	}
	defer d.mu.Unlock()
	t := d.existing(name)
	if t == nil {
		return baton.Retention{}, fmt.Errorf("retention of %s: %w", name, baton.ErrNotFound)
	}
	return t.retention, nil
}

// unlockDeleted ends a read that readTopic began on a deleted topic, which
// reads as an unknown one (nothing in its queue, lock or cursor): t is
// what readTopic returned, err its error.
func (s *Store) unlockDeleted(t *topic, err error) error {
	if t != nil {
		s.d.mu.Unlock()
	}
	return err
}

// existing returns the topic if it exists: created, and not deleted since.
// Callers hold mu.
func (d *data) existing(name string) *topic {
	if t := d.topics[name]; t != nil && !t.deleted {
		return t
	}
	return nil
}
