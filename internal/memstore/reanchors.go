package memstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/baton-pub/baton"
)

// AddReanchor implements baton.Reanchors.
func (s *Store) AddReanchor(ctx context.Context, r baton.Reanchor) error {
	d, err := s.begin(ctx, "add re-anchor", baton.ValidateReanchor(r))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	if len(d.reanchors[r.Topic]) >= baton.MaxReanchors {
		return fmt.Errorf("add re-anchor of %s: %w", r.Topic, baton.Invalidf("topic", "already %d re-anchors", baton.MaxReanchors))
	}
	r.Note = slices.Clone(r.Note)
	d.reanchors[r.Topic] = append(d.reanchors[r.Topic], r)
	d.sig.Notify(r.Topic, baton.SignalCommit)
	return nil
}

// Reanchors implements baton.Reanchors.
func (s *Store) Reanchors(ctx context.Context, topic string) ([]baton.Reanchor, error) {
	d, err := s.begin(ctx, "list re-anchors", baton.ValidTopic(topic))
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := make([]baton.Reanchor, 0, len(d.reanchors[topic]))
	for _, r := range d.reanchors[topic] {
		r.Note = slices.Clone(r.Note)
		out = append(out, r)
	}
	return out, nil
}
