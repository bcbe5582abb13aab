package redis

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// checkpointJSON is a checkpoint as stored in the checkpoints hash. Numbers
// are strings: Lua's cjson would turn large integers into doubles.
type checkpointJSON struct {
	Root   string                `json:"root"`
	Epoch  string                `json:"epoch"`
	Node   string                `json:"node"`
	Note   string                `json:"note"` // base64
	AtUs   string                `json:"at_us,omitempty"`
	Cosigs map[string]cosignJSON `json:"cosigs,omitempty"`
}

type cosignJSON struct {
	Signature string `json:"signature"` // base64
	AtUs      string `json:"at_us"`
}

// AddCheckpoint implements baton.Checkpoints: one script checks the lease
// (with its node lease), the cursor and the latest size, then stores, and
// publishes "checkpoint <size>" on the topic's events channel: every handle
// signals SignalCheckpoint when it hears it (notify.go), this one too.
func (s *Store) AddCheckpoint(ctx context.Context, cp baton.Checkpoint) error {
	if err := baton.ValidateCheckpoint(cp); err != nil {
		return err
	}
	js, err := checkpointJSONOf(cp)
	if err != nil {
		return fmt.Errorf("add checkpoint: %w", err)
	}
	t := cp.Topic
	keys := []string{s.k.lock(t), s.k.cursor(t), s.k.checkpoints(t), s.k.cpsizes(t), s.k.holderLease(t, cp.Node)}
	r, err := s.run(ctx, scriptCheckpoint, true, keys, cp.Node, cp.Epoch, cp.Size, js, s.k.events(t))
	if err != nil {
		return fmt.Errorf("add checkpoint %s size %d: %w", t, cp.Size, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		return nil
	case "fenced":
		return fmt.Errorf("add checkpoint %s epoch %d by %s: %s (the lock is at epoch %s by %q): %w",
			t, cp.Epoch, cp.Node, replyStr(r, 3), replyStr(r, 1), replyStr(r, 2), baton.ErrFenced)
	case "invalid":
		return baton.Invalidf("size", "%s", replyStr(r, 1))
	}
	return fmt.Errorf("add checkpoint %s: unexpected reply %v", t, r)
}

func checkpointJSONOf(cp baton.Checkpoint) ([]byte, error) {
	return json.Marshal(checkpointJSON{Root: cp.Root.String(), Epoch: strconv.FormatUint(cp.Epoch, 10),
		Node: cp.Node, Note: base64.StdEncoding.EncodeToString(cp.Note)})
}

// Checkpoint implements baton.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, topic string) (baton.Checkpoint, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.Checkpoint{}, err
	}
	if err := s.errClosed(); err != nil {
		return baton.Checkpoint{}, err
	}
	pipe := s.rdb.Pipeline()
	tc := pipe.ZRevRangeWithScores(ctx, s.k.cpsizes(topic), 0, 0)
	if err := s.send(ctx, pipe); err != nil {
		return baton.Checkpoint{}, fmt.Errorf("read checkpoint of %s: %w", topic, s.mapErr(err))
	}
	top := tc.Val()
	if len(top) == 0 {
		return baton.Checkpoint{}, fmt.Errorf("checkpoint of %s: %w", topic, baton.ErrNotFound)
	}
	size := strconv.FormatUint(uint64(top[0].Score), 10)
	// The second read is the one confirmed (confirm.go): a size whose
	// checkpoint a failover dropped in between reads as not found.
	pipe, err := s.readPipe(ctx, topic)
	if err != nil {
		return baton.Checkpoint{}, fmt.Errorf("read checkpoint of %s: %w", topic, err)
	}
	vc := pipe.HGet(ctx, s.k.checkpoints(topic), size)
	if err := s.sendRead(ctx, topic, pipe); err != nil {
		return baton.Checkpoint{}, fmt.Errorf("read checkpoint of %s: %w", topic, s.mapErr(err))
	}
	if errors.Is(vc.Err(), goredis.Nil) {
		// The sorted set and the hash disagree.
		return baton.Checkpoint{}, fmt.Errorf("checkpoint of %s size %s: %w", topic, size, baton.ErrNotFound)
	}
	return decodeCheckpoint(topic, size, vc.Val())
}

// Checkpoints implements baton.Checkpoints.
func (s *Store) Checkpoints(ctx context.Context, topic string, after uint64, limit int) ([]baton.Checkpoint, error) {
	n, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	sc := pipe.ZRangeByScore(ctx, s.k.cpsizes(topic), &goredis.ZRangeBy{
		Min: "(" + strconv.FormatUint(after, 10), Max: "+inf", Count: n})
	if err := s.send(ctx, pipe); err != nil {
		return nil, fmt.Errorf("read checkpoints of %s: %w", topic, s.mapErr(err))
	}
	sizes := sc.Val()
	if len(sizes) == 0 {
		return nil, nil
	}
	// The second read is the one confirmed (confirm.go), as in Checkpoint.
	if pipe, err = s.readPipe(ctx, topic); err != nil {
		return nil, fmt.Errorf("read checkpoints of %s: %w", topic, err)
	}
	vc := pipe.HMGet(ctx, s.k.checkpoints(topic), sizes...)
	if err := s.sendRead(ctx, topic, pipe); err != nil {
		return nil, fmt.Errorf("read checkpoints of %s: %w", topic, s.mapErr(err))
	}
	vals := vc.Val()
	out := make([]baton.Checkpoint, 0, len(sizes))
	for i, v := range vals {
		js, ok := v.(string)
		if !ok {
			continue // not there: the sorted set and the hash disagree
		}
		cp, err := decodeCheckpoint(topic, sizes[i], js)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, nil
}

func decodeCheckpoint(topic, size, js string) (baton.Checkpoint, error) {
	var c checkpointJSON
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		return baton.Checkpoint{}, fmt.Errorf("read checkpoint %s/%s: %w", topic, size, err)
	}
	cp := baton.Checkpoint{Topic: topic, Node: c.Node, At: parseMicros(c.AtUs)}
	var err error
	if cp.Size, err = strconv.ParseUint(size, 10, 64); err != nil {
		return cp, fmt.Errorf("read checkpoint %s/%s: bad size: %w", topic, size, err)
	}
	cp.Epoch, _ = strconv.ParseUint(c.Epoch, 10, 64)
	if cp.Root, err = baton.ParseHash(c.Root); err != nil {
		return cp, fmt.Errorf("read checkpoint %s/%s: %w", topic, size, err)
	}
	if cp.Note, err = base64.StdEncoding.DecodeString(c.Note); err != nil {
		return cp, fmt.Errorf("read checkpoint %s/%s: note: %w", topic, size, err)
	}
	for node, cs := range c.Cosigs {
		sig, err := base64.StdEncoding.DecodeString(cs.Signature)
		if err != nil {
			return cp, fmt.Errorf("read checkpoint %s/%s: cosignature of %s: %w", topic, size, node, err)
		}
		cp.Cosignatures = append(cp.Cosignatures, baton.Cosignature{Node: node, Signature: sig, At: parseMicros(cs.AtUs)})
	}
	slices.SortFunc(cp.Cosignatures, func(a, b baton.Cosignature) int { return strings.Compare(a.Node, b.Node) })
	return cp, nil
}

// Cosign implements baton.Checkpoints.
func (s *Store) Cosign(ctx context.Context, topic string, size uint64, cs baton.Cosignature) error {
	if err := baton.ValidateCosign(topic, cs); err != nil {
		return err
	}
	r, err := s.run(ctx, scriptCosign, false, []string{s.k.checkpoints(topic)},
		size, cs.Node, base64.StdEncoding.EncodeToString(cs.Signature))
	if err != nil {
		return fmt.Errorf("cosign %s checkpoint %d: %w", topic, size, err)
	}
	if replyStr(r, 0) == "missing" {
		return fmt.Errorf("cosign %s checkpoint %d: %w", topic, size, baton.ErrNotFound)
	}
	return nil
}

// NodeKeys implements baton.Members.
func (s *Store) NodeKeys(ctx context.Context) ([]baton.NodeKey, error) {
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	ms, err := s.rdb.SMembers(ctx, s.k.nodeKeys()).Result()
	if err != nil {
		return nil, fmt.Errorf("list node keys: %w", s.mapErr(err))
	}
	out := make([]baton.NodeKey, 0, len(ms))
	for _, m := range ms {
		node, b64, ok := strings.Cut(m, " ")
		if !ok {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		out = append(out, baton.NodeKey{Node: node, PublicKey: k})
	}
	slices.SortFunc(out, func(a, b baton.NodeKey) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return bytes.Compare(a.PublicKey, b.PublicKey)
	})
	return out, nil
}
