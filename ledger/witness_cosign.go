package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/baton-pub/baton"
)

// cosign cosigns the latest accepted checkpoint, unless this node signed
// it, already cosigned it, or cosigned another less than CosignEvery ago.
func (tw *topicWitness) cosign(ctx context.Context) error {
	tw.mu.Lock()
	cp, ok := tw.latest, tw.hasCP
	tw.mu.Unlock()
	me := tw.w.cfg.Key.Node
	tw.cosignAt = time.Time{}
	if !ok || cp.Node == me || hasCosigner(cp, me) || tw.cosigned.Load() >= cp.Size {
		return nil
	}
	if at := tw.lastCosign.Add(tw.w.cfg.CosignEvery); tw.w.clock.Now().Before(at) {
		tw.cosignAt = at // the round asks to be run again then
		return nil
	}
	if tw.dirty {
		if err := tw.saveState(); err != nil {
			return err
		}
	}
	text, err := Text(cp.Note)
	if err != nil {
		return err
	}
	cs, err := Cosign(text, tw.w.cfg.Key)
	if err != nil {
		return err
	}
	if err := tw.w.cfg.Store.Cosign(ctx, tw.topic, cp.Size, cs); err != nil {
		return fmt.Errorf("cosign checkpoint %d: %w", cp.Size, err)
	}
	tw.lastCosign = tw.w.clock.Now()
	tw.cosigned.Store(cp.Size)
	cs.At = tw.lastCosign
	tw.mu.Lock()
	if tw.latest.Size == cp.Size && !hasCosigner(tw.latest, me) {
		tw.latest.Cosignatures = append(slices.Clone(tw.latest.Cosignatures), cs)
	}
	tw.mu.Unlock()
	return nil
}

func hasCosigner(cp baton.Checkpoint, node string) bool {
	for _, cs := range cp.Cosignatures {
		if cs.Node == node {
			return true
		}
	}
	return false
}
