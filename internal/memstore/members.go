package memstore

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// Heartbeat records m as live until now+ttl.
func (s *Store) Heartbeat(ctx context.Context, m baton.Member, ttl time.Duration) error {
	d, err := s.begin(ctx, "heartbeat", baton.ValidateHeartbeat(m, ttl))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	now := d.now()
	m.Heartbeat, m.ExpiresAt = now, now.Add(ttl)
	m.PublicKey = slices.Clone(m.PublicKey)
	d.members[m.Node] = m
	if len(m.PublicKey) > 0 {
		if d.keys == nil {
			d.keys = make(map[[2]string]struct{})
		}
		d.keys[[2]string{m.Node, string(m.PublicKey)}] = struct{}{}
	}
	return nil
}

// Leave removes a member at once.
func (s *Store) Leave(ctx context.Context, node string) error {
	d, err := s.begin(ctx, "leave", baton.ValidateLeave(node))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	delete(d.members, node)
	return nil
}

// Members lists the live members, sorted by node.
func (s *Store) Members(ctx context.Context) ([]baton.Member, error) {
	d, err := s.begin(ctx, "members", nil)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	now := d.now()
	out := make([]baton.Member, 0, len(d.members))
	for node, m := range d.members {
		if !now.Before(m.ExpiresAt) {
			delete(d.members, node)
			continue
		}
		m.PublicKey = slices.Clone(m.PublicKey)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b baton.Member) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// NodeKeys lists every registered key.
func (s *Store) NodeKeys(ctx context.Context) ([]baton.NodeKey, error) {
	d, err := s.begin(ctx, "node keys", nil)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := make([]baton.NodeKey, 0, len(d.keys))
	for k := range d.keys {
		out = append(out, baton.NodeKey{Node: k[0], PublicKey: []byte(k[1])})
	}
	slices.SortFunc(out, func(a, b baton.NodeKey) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return bytes.Compare(a.PublicKey, b.PublicKey)
	})
	return out, nil
}
