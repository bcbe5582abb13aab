package redis

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/baton-pub/baton"
)

// AddReanchor implements baton.Reanchors: one script bounds the list,
// appends the note and publishes a commit event, so that every witness
// looks at the topic again.
func (s *Store) AddReanchor(ctx context.Context, r baton.Reanchor) error {
	if err := baton.ValidateReanchor(r); err != nil {
		return err
	}
	res, err := s.run(ctx, scriptReanchor, true, []string{s.k.reanchors(r.Topic)},
		base64.StdEncoding.EncodeToString(r.Note), baton.MaxReanchors, s.k.events(r.Topic))
	if err != nil {
		return fmt.Errorf("add re-anchor of %s: %w", r.Topic, err)
	}
	if replyStr(res, 0) == "full" {
		return fmt.Errorf("add re-anchor of %s: %w", r.Topic, baton.Invalidf("topic", "already %d re-anchors", baton.MaxReanchors))
	}
	return nil
}

// Reanchors implements baton.Reanchors.
func (s *Store) Reanchors(ctx context.Context, topic string) ([]baton.Reanchor, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return nil, err
	}
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	ls, err := s.rdb.LRange(ctx, s.k.reanchors(topic), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list re-anchors of %s: %w", topic, s.mapErr(err))
	}
	out := make([]baton.Reanchor, 0, len(ls))
	for _, b64 := range ls {
		note, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("list re-anchors of %s: %w", topic, err)
		}
		out = append(out, baton.Reanchor{Topic: topic, Note: note})
	}
	return out, nil
}
