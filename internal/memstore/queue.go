package memstore

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/baton-pub/baton"
)

// Append adds the updates atomically, skipping msg ids already taken. It
// keeps each value as given (see baton.Queue.Append's precondition).
func (s *Store) Append(ctx context.Context, name string, updates []baton.Update) ([]baton.Receipt, error) {
	d, err := s.begin(ctx, "append", baton.ValidateAppend(name, updates))
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if len(updates) == 0 {
		return nil, nil
	}
	now := d.now()
	t, created := d.topicForWrite(name)
	receipts := make([]baton.Receipt, len(updates))
	added := 0
	for i, u := range updates {
		if r, ok := t.byMsgID[u.MsgID]; ok {
			r.Duplicate = true
			receipts[i] = r
			continue
		}
		added++
		it := baton.Item{
			Topic:      name,
			Seq:        t.last + 1,
			ID:         u.ID,
			Value:      slices.Clone(u.Value),
			MsgID:      u.MsgID,
			Hash:       baton.HashItem(name, u),
			IngestedAt: now,
			Deleted:    u.Deleted,
		}
		t.last = it.Seq
		t.items = append(t.items, it)
		t.byHash[it.Hash] = it.Seq
		r := baton.Receipt{Seq: it.Seq, Hash: it.Hash, MsgID: it.MsgID}
		t.byMsgID[u.MsgID] = r
		receipts[i] = r
	}
	var sig baton.Signal
	if added > 0 {
		sig |= baton.SignalAppend
	}
	if created {
		sig |= baton.SignalTopic
	}
	d.sig.Notify(name, sig)
	return receipts, nil
}

func copyItem(it baton.Item) baton.Item {
	it.Value = slices.Clone(it.Value)
	return it
}

// kept returns the kept items with seq > after, or ErrTrimmed. Callers hold mu.
func (t *topic) kept(after uint64) ([]baton.Item, error) {
	if after < t.trimmed {
		return nil, fmt.Errorf("%s after %d: first kept seq is %d: %w", t.name, after, t.trimmed+1, baton.ErrTrimmed)
	}
	i := after - t.trimmed
	if i >= uint64(len(t.items)) {
		return nil, nil
	}
	return t.items[i:], nil
}

// Items returns up to limit items with seq > after.
func (s *Store) Items(ctx context.Context, name string, after uint64, limit int) ([]baton.Item, error) {
	t, err := s.readTopic(ctx, "items", name, limit)
	if t == nil || t.deleted {
		return nil, s.unlockDeleted(t, err)
	}
	defer s.d.mu.Unlock()
	kept, err := t.kept(after)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	kept = kept[:min(limit, len(kept))]
	out := make([]baton.Item, len(kept))
	for i, it := range kept {
		out[i] = copyItem(it)
	}
	return out, nil
}

// SeqOfHash looks an item hash up in the topic's index.
func (s *Store) SeqOfHash(ctx context.Context, name string, h baton.Hash) (uint64, error) {
	d, err := s.begin(ctx, "seq of hash", baton.ValidTopic(name))
	if err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	if t := d.topics[name]; t != nil {
		if seq, ok := t.byHash[h]; ok {
			return seq, nil
		}
	}
	return 0, fmt.Errorf("seq of hash %s in %s: %w", h, name, baton.ErrNotFound)
}

// Topics lists the topics, sorted.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	d, err := s.begin(ctx, "topics", nil)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.topics))
	for name, t := range d.topics {
		if t.deleted {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// Topic summarises a topic's queue.
func (s *Store) Topic(ctx context.Context, name string) (baton.TopicInfo, error) {
	d, err := s.begin(ctx, "topic", baton.ValidTopic(name))
	if err != nil {
		return baton.TopicInfo{}, err
	}
	defer d.mu.Unlock()
	t := d.existing(name)
	if t == nil {
		return baton.TopicInfo{}, fmt.Errorf("topic %s: %w", name, baton.ErrNotFound)
	}
	ti := baton.TopicInfo{Topic: name, LastSeq: t.last}
	if len(t.items) > 0 {
		ti.FirstSeq = t.items[0].Seq
	}
	return ti, nil
}

// Trim deletes the published items with seq < before, keeping the item at
// the cursor (the resume point) and every leaf.
func (s *Store) Trim(ctx context.Context, name string, before uint64) (int, error) {
	d, err := s.begin(ctx, "trim", baton.ValidTopic(name))
	if err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	t := d.topics[name]
	if t == nil {
		return 0, nil
	}
	upto := min(before, t.cursor.Seq) // delete seq < upto
	n := 0
	for len(t.items) > n && t.items[n].Seq < upto {
		it := t.items[n]
		delete(t.byHash, it.Hash)
		t.trimmed = it.Seq
		n++
	}
	if n > 0 {
		t.items = slices.Clone(t.items[n:])
	}
	return n, nil
}
