package memstore

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/baton-pub/baton"
)

func copyCheckpoint(cp baton.Checkpoint) baton.Checkpoint {
	cp.Note = slices.Clone(cp.Note)
	cs := make([]baton.Cosignature, len(cp.Cosignatures))
	for i, c := range cp.Cosignatures {
		c.Signature = slices.Clone(c.Signature)
		cs[i] = c
	}
	if len(cs) == 0 {
		cs = nil
	}
	cp.Cosignatures = cs
	return cp
}

// AddCheckpoint stores a checkpoint made under the topic's live lease.
func (s *Store) AddCheckpoint(ctx context.Context, cp baton.Checkpoint) error {
	d, err := s.begin(ctx, "add checkpoint", baton.ValidateCheckpoint(cp))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	now := d.now()
	t := d.holding(cp.Topic, cp.Node, cp.Epoch, now)
	if t == nil {
		return fmt.Errorf("add checkpoint %s epoch %d by %s: %w", cp.Topic, cp.Epoch, cp.Node, baton.ErrFenced)
	}
	if cp.Size > t.cursor.Seq {
		return fmt.Errorf("add checkpoint %s: %w", cp.Topic, baton.Invalidf("size", "%d is beyond the cursor %d", cp.Size, t.cursor.Seq))
	}
	if n := len(t.cps); n > 0 && t.cps[n-1].Size >= cp.Size {
		return fmt.Errorf("add checkpoint %s: %w", cp.Topic, baton.Invalidf("size", "%d is not above the latest checkpoint's %d", cp.Size, t.cps[n-1].Size))
	}
	cp = copyCheckpoint(cp)
	cp.Cosignatures = nil
	cp.At = now
	t.cps = append(t.cps, cp)
	d.sig.Notify(cp.Topic, baton.SignalCheckpoint)
	return nil
}

// Checkpoint returns the topic's latest checkpoint.
func (s *Store) Checkpoint(ctx context.Context, name string) (baton.Checkpoint, error) {
	cps, err := s.Checkpoints(ctx, name, 0, 1<<31)
	if err != nil {
		return baton.Checkpoint{}, err
	}
	if len(cps) == 0 {
		return baton.Checkpoint{}, fmt.Errorf("checkpoint of %s: %w", name, baton.ErrNotFound)
	}
	return cps[len(cps)-1], nil
}

// Checkpoints lists checkpoints with Size > after.
func (s *Store) Checkpoints(ctx context.Context, name string, after uint64, limit int) ([]baton.Checkpoint, error) {
	t, err := s.readTopic(ctx, "checkpoints", name, limit)
	if t == nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	i := sort.Search(len(t.cps), func(i int) bool { return t.cps[i].Size > after })
	var out []baton.Checkpoint
	for _, cp := range t.cps[i:min(len(t.cps), i+limit)] {
		out = append(out, copyCheckpoint(cp))
	}
	return out, nil
}

// Cosign adds a witness's cosignature.
func (s *Store) Cosign(ctx context.Context, name string, size uint64, cs baton.Cosignature) error {
	d, err := s.begin(ctx, "cosign", baton.ValidateCosign(name, cs))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	t := d.topics[name]
	var cp *baton.Checkpoint
	if t != nil {
		i := sort.Search(len(t.cps), func(i int) bool { return t.cps[i].Size >= size })
		if i < len(t.cps) && t.cps[i].Size == size {
			cp = &t.cps[i]
		}
	}
	if cp == nil {
		return fmt.Errorf("cosign %s checkpoint %d: %w", name, size, baton.ErrNotFound)
	}
	cs.Signature = slices.Clone(cs.Signature)
	cs.At = d.now()
	cp.Cosignatures = slices.DeleteFunc(cp.Cosignatures, func(c baton.Cosignature) bool { return c.Node == cs.Node })
	cp.Cosignatures = append(cp.Cosignatures, cs)
	slices.SortFunc(cp.Cosignatures, func(a, b baton.Cosignature) int { return strings.Compare(a.Node, b.Node) })
	return nil
}
