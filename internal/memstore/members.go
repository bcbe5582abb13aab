package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// Heartbeat records m as live until now+ttl.
func (s *Store) Heartbeat(ctx context.Context, m baton.Member, ttl time.Duration) error {
	if err := s.check(ctx, "heartbeat"); err != nil {
		return err
	}
	if m.Node == "" {
		return fmt.Errorf("heartbeat: %w", baton.Invalidf("node", "must not be empty"))
	}
	if ttl <= 0 {
		return fmt.Errorf("heartbeat: %w", baton.Invalidf("ttl", "must be positive, got %v", ttl))
	}
	d := s.d
	d.mu.Lock()
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
	if err := s.check(ctx, "leave"); err != nil {
		return err
	}
	if node == "" {
		return fmt.Errorf("leave: %w", baton.Invalidf("node", "must not be empty"))
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.members, node)
	return nil
}

// Members lists the live members, sorted by node.
func (s *Store) Members(ctx context.Context) ([]baton.Member, error) {
	if err := s.check(ctx, "members"); err != nil {
		return nil, err
	}
	d := s.d
	d.mu.Lock()
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
	if err := s.check(ctx, "node keys"); err != nil {
		return nil, err
	}
	d := s.d
	d.mu.Lock()
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
