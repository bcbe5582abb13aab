package redis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// memberJSON is a member as stored in the members hash. The heartbeat
// script stamps heartbeat_us and expires_us from the server's clock.
type memberJSON struct {
	Node        string `json:"node"`
	Addr        string `json:"addr"`
	State       string `json:"state"`
	Leases      int    `json:"leases"`
	PublicKey   []byte `json:"public_key,omitempty"`
	HeartbeatUs string `json:"heartbeat_us,omitempty"`
	ExpiresUs   string `json:"expires_us,omitempty"`
}

// Heartbeat implements baton.Members.
func (s *Store) Heartbeat(ctx context.Context, m baton.Member, ttl time.Duration) error {
	if err := baton.ValidateHeartbeat(m, ttl); err != nil {
		return err
	}
	js, err := json.Marshal(memberJSON{Node: m.Node, Addr: m.Addr, State: string(m.State), Leases: m.Leases, PublicKey: m.PublicKey})
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", m.Node, err)
	}
	entry := ""
	if len(m.PublicKey) > 0 {
		entry = m.Node + " " + base64.StdEncoding.EncodeToString(m.PublicKey)
	}
	if _, err := s.runValue(ctx, scriptHeartbeat, []string{s.k.members(), s.k.memberTTLs(), s.k.nodeKeys()}, m.Node, js, micros(ttl), entry); err != nil {
		return fmt.Errorf("heartbeat %s: %w", m.Node, err)
	}
	return nil
}

// runValue runs a script whose reply is not an array.
func (s *Store) runValue(ctx context.Context, sc *script, keys []string, args ...any) (any, error) {
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	v, err := sc.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		return nil, s.mapErr(err)
	}
	return v, nil
}

// Leave implements baton.Members.
func (s *Store) Leave(ctx context.Context, node string) error {
	if err := baton.ValidateLeave(node); err != nil {
		return err
	}
	if err := s.errClosed(); err != nil {
		return err
	}
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HDel(ctx, s.k.members(), node)
		p.ZRem(ctx, s.k.memberTTLs(), node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("leave %s: %w", node, s.mapErr(err))
	}
	return nil
}

// Members implements baton.Members: the members hash and the server's
// clock in one round trip; lapsed entries are filtered out here and deleted
// by the next heartbeat.
func (s *Store) Members(ctx context.Context) ([]baton.Member, error) {
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	tc := pipe.Time(ctx)
	hc := pipe.HGetAll(ctx, s.k.members())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("list members: %w", s.mapErr(err))
	}
	now := tc.Val().UnixMicro()
	var out []baton.Member
	for node, js := range hc.Val() {
		var j memberJSON
		if err := json.Unmarshal([]byte(js), &j); err != nil {
			return nil, fmt.Errorf("list members: decode %s: %w", node, err)
		}
		exp, _ := strconv.ParseInt(j.ExpiresUs, 10, 64)
		if exp <= now {
			continue
		}
		out = append(out, baton.Member{Node: node, Addr: j.Addr, State: baton.MemberState(j.State), Leases: j.Leases,
			PublicKey: j.PublicKey, Heartbeat: parseMicros(j.HeartbeatUs), ExpiresAt: fromMicros(exp)})
	}
	slices.SortFunc(out, func(a, b baton.Member) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}
