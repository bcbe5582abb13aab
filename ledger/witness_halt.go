package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/baton-pub/baton"
)

// A witness halts a topic when the store's ledger no longer adds up
// against its copy: the store lost writes the copy holds (a Redis failover
// without wait_replicas, a restored backup). Halted, it checks and cosigns
// nothing of the topic, says why in Status (and so in GET /v1/status,
// /readyz and the metrics), and waits for a re-anchor: a signed record in
// the store, made by an operator's request (Witness.Reanchor), that the
// store's ledger stands from the last seq on which the store and the
// copies agree. Only a re-anchor from exactly that seq, whose root is the
// copy's root there, lifts the halt; the copy is then rebuilt from the
// store and checked against that root (docs/ledger.md, "Lost writes and
// re-anchoring").

// errHalted stops a round's mirroring and checking of a halted topic.
var errHalted = errors.New("ledger halted: the store lost writes this node's copy holds")

// halted is the topic's halt, nil if none.
func (tw *topicWitness) halted() *baton.LedgerHalt {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.halt
}

// haltOn halts the topic for check (a baton.Halt* constant): it finds
// where the store and the copy part, raises one alarm and returns
// errHalted. Only the topic's round calls it.
func (tw *topicWitness) haltOn(ctx context.Context, check, what string) error {
	d, err := tw.divergence(ctx)
	if err != nil {
		return err
	}
	tw.haltWhat = what
	h := tw.newHalt(check, d.agreed)
	tw.alarm("halted: " + h.Message)
	return errHalted
}

// divergence is where the store's ledger and the copy part now.
func (tw *topicWitness) divergence(ctx context.Context) (divergence, error) {
	st := tw.w.cfg.Store
	cur, err := st.Cursor(ctx, tw.topic)
	if err != nil {
		return divergence{}, err
	}
	return findDivergence(ctx, st, tw.topic, tw.tree, cur.Seq)
}

// newHalt sets the topic's halt for check, with the store and the copy
// agreeing up to seq agreed.
func (tw *topicWitness) newHalt(check string, agreed uint64) *baton.LedgerHalt {
	h := &baton.LedgerHalt{Check: check, Agreed: agreed, Message: fmt.Sprintf(
		"%s: the store lost writes; it agrees with this node's copy up to seq %d: see `baton ledger diagnose %s`, resume with `baton ledger reanchor %s --from %d`",
		tw.haltWhat, agreed, tw.topic, tw.topic, agreed)}
	tw.mu.Lock()
	tw.halt = h
	tw.mu.Unlock()
	return h
}

// reanchored lifts the halt if the store holds the copy again, or if it
// has a re-anchor that fits it: signed with a registered key, from the
// seq where the store and the copy part now, with the root of this node's
// copy there. Only the topic's round calls it.
func (tw *topicWitness) reanchored(ctx context.Context) error {
	h := tw.halted()
	if h == nil {
		return nil
	}
	// The store may have been brought back whole (the old master, a newer
	// backup), or have lost more since: look again where it parts.
	d, err := tw.divergence(ctx)
	if err != nil {
		return err
	}
	if d.first == 0 {
		tw.mu.Lock()
		tw.halt = nil
		tw.mu.Unlock()
		if tw.alarms.Load() > 0 {
			tw.alarms.Add(^uint64(0)) // the halt's own alarm
		}
		tw.log.Info("the store's ledger holds this node's copy again: halt lifted", "size", tw.tree.Size())
		return nil
	}
	if d.agreed != h.Agreed {
		h = tw.newHalt(h.Check, d.agreed)
	}
	rs, err := tw.w.cfg.Store.Reanchors(ctx, tw.topic)
	if err != nil {
		return err
	}
	for i := len(rs) - 1; i >= 0; i-- {
		b, err := tw.verifyReanchor(ctx, rs[i])
		if err != nil {
			if storeAway(ctx, err) {
				return err
			}
			continue // another's forgery, or a key this node cannot check: not a verdict on the halt
		}
		if b.Seq != h.Agreed {
			continue // an older re-anchor, or one from another seq: not this halt's
		}
		if b.Seq <= tw.tree.Size() {
			root, err := tw.tree.Root(b.Seq)
			if err != nil {
				return err
			}
			if root != b.Root {
				if !tw.refusedReanchor[b.At.UnixNano()] {
					tw.refusedReanchor[b.At.UnixNano()] = true
					tw.alarm(fmt.Sprintf("refused the re-anchor of %s by %s on %s: root %s at seq %d, but this node's copy has %s",
						tw.topic, b.By, b.Node, b.Root, b.Seq, root))
				}
				continue
			}
		}
		return tw.applyReanchor(b)
	}
	return errHalted
}

func (tw *topicWitness) verifyReanchor(ctx context.Context, r baton.Reanchor) (ReanchorBody, error) {
	b, err := VerifyReanchor(r, tw.w.keysNow())
	if errors.Is(err, ErrBadSignature) {
		keys, kerr := tw.keys(ctx, b.Node, true)
		if kerr != nil {
			return b, kerr
		}
		b, err = VerifyReanchor(r, keys)
	}
	return b, err
}

func (w *Witness) keysNow() *Keys {
	w.keysMu.Lock()
	defer w.keysMu.Unlock()
	return w.keys
}

// applyReanchor keeps what the copy was (the accepted state and the halt,
// in reanchors/TOPIC-SEQ.json in the witness's Dir), empties the copy and resumes from the
// re-anchor: the next rounds mirror the store's ledger again, and the
// copy's root at b.Seq must be b.Root (recheck), or the witness raises an
// alarm. The alarms raised up to the re-anchor are acknowledged by it:
// the count starts again at zero.
func (tw *topicWitness) applyReanchor(b ReanchorBody) error {
	rec, _ := json.Marshal(struct {
		Accepted witnessState      `json:"accepted"`
		CopySize uint64            `json:"copy_size"`
		Halt     *baton.LedgerHalt `json:"halt"`
		Reanchor ReanchorBody      `json:"reanchor"`
	}{tw.state, tw.tree.Size(), tw.halted(), b})
	dir := filepath.Join(tw.w.cfg.Dir, "reanchors")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("re-anchor ledger copy of %s: %w", tw.topic, err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.json", tw.topic, b.Seq)), rec, 0o640); err != nil {
		return fmt.Errorf("re-anchor ledger copy of %s: %w", tw.topic, err)
	}
	if err := tw.tree.Reset(); err != nil {
		return fmt.Errorf("re-anchor ledger copy of %s: %w", tw.topic, err)
	}
	tw.forget()
	tw.state = witnessState{Size: b.Seq, Root: b.Root, Reanchor: true}
	tw.recheck = b.Seq > 0
	tw.seen[b.Seq] = b.Root
	if err := tw.saveState(); err != nil {
		tw.dirty = true
		tw.log.Warn("ledger copy: save state", "err", err)
	}
	tw.mu.Lock()
	tw.halt = nil
	tw.mu.Unlock()
	tw.alarms.Store(0)
	tw.log.Warn("ledger re-anchored: the copy is rebuilt from the store's ledger", "seq", b.Seq,
		"lost_size", b.LostSize, "by", b.By, "signer", b.Node)
	return nil
}

// forget empties the witness's memory of the topic (not the copy's files).
func (tw *topicWitness) forget() {
	tw.state, tw.lastEpoch, tw.gapAt, tw.recheck = witnessState{}, 0, 0, false
	tw.holders = make(map[uint64]string)
	tw.seen = make(map[uint64]baton.Hash)
	tw.refused = make(map[uint64]bool)
	tw.rewritten = make(map[baton.Hash]bool)
	tw.dirty = true
	tw.mu.Lock()
	tw.latest, tw.hasCP, tw.lastErr, tw.halt = baton.Checkpoint{}, false, "", nil
	tw.mu.Unlock()
	tw.cosigned.Store(0)
}
