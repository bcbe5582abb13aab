package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
)

// handoverRead bounds the read of a hand-over's record.
const handoverRead = 5 * time.Second

// handovers logs each hand-over to this node once, with the record of the
// lease it followed (docs/operations.md, "Logs"), and tells
// Config.OnHandover (the metrics). The record is read apart, on a
// goroutine of its own: an elector must not wait for it.
type handovers struct {
	mu sync.Mutex
	// told is the epoch last reported per topic: a lease kept through a
	// lapse of trust becomes active again, and is not a new hand-over.
	// (Only the same epoch is skipped: a topic deleted and made again
	// starts its epochs over.)
	told map[string]uint64
	wg   sync.WaitGroup
	// pending counts the reports not yet read: past burstReports, a
	// report waits a while first (see reportHandover).
	pending int
	// quit ends when the node closes: waiting reports give up.
	quit     context.Context
	stopping context.CancelFunc
}

// quitCtx returns the context that ends when the node closes.
func (h *handovers) quitCtx() context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.quit == nil {
		h.quit, h.stopping = context.WithCancel(context.Background())
	}
	return h.quit
}

// stop makes waiting reports give up, and waits for the others.
func (h *handovers) stop() {
	h.quitCtx()
	h.stopping()
	h.wg.Wait()
}

// burstReports is how many hand-over reports may read their records at
// once: a crash hands over thousands of topics together, and their reads
// would compete with the hand-overs themselves; past it, a report waits
// for this node's leases to resume (resume.go), then up to a TTL more
// (spread at random), before it reads.
const burstReports = 8

// acquired is told of every lease this node starts publishing under.
func (n *Node) acquired(l baton.Lease) {
	if l.Epoch <= 1 {
		return // the topic's first lease: nobody handed it over
	}
	h := &n.handed
	h.mu.Lock()
	if h.told == nil {
		h.told = make(map[string]uint64)
	}
	if h.told[l.Topic] == l.Epoch {
		h.mu.Unlock()
		return
	}
	h.told[l.Topic] = l.Epoch
	h.pending++
	var wait time.Duration
	if h.pending > burstReports {
		wait = rand.N(n.cfg.TTL) + n.cfg.TTL/2
	}
	h.mu.Unlock()
	h.wg.Go(func() {
		defer func() {
			h.mu.Lock()
			h.pending--
			h.mu.Unlock()
		}()
		if wait > 0 {
			quit := h.quitCtx()
			if !n.resume.wait(quit, resumeHoldMax) {
				return
			}
			t := n.cfg.Clock.NewTimer(wait)
			select {
			case <-t.C():
			case <-quit.Done():
				t.Stop()
				return
			}
		}
		n.reportHandover(l)
	})
}

// reportHandover reads the record of the lease l followed, logs the
// hand-over and tells OnHandover.
func (n *Node) reportHandover(l baton.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), handoverRead)
	defer cancel()
	recs, err := n.store.Handovers(ctx, l.Topic, 4)
	if err != nil {
		n.log.Warn("hand-over: read its record", "topic", l.Topic, "epoch", l.Epoch, "err", err)
		return
	}
	for _, r := range recs {
		if r.SuccessorEpoch != l.Epoch {
			continue
		}
		n.log.Info("hand-over", "topic", l.Topic, "epoch", l.Epoch, "previous_epoch", r.Epoch,
			"previous_holder", r.Holder, "reason", r.Reason, "last_seq", r.LastSeq, "without_holder", r.Handover())
		if n.cfg.OnHandover != nil {
			n.cfg.OnHandover(r)
		}
		return
	}
	// The records name later successors already: this lease was short.
	n.log.Info("hand-over", "topic", l.Topic, "epoch", l.Epoch, "record", "not found")
}

// reasonLapsed is the reason of an elector.Change when the elector stepped
// down because its node lease could not be renewed in time (elector/
// elector.go, Elector.active: "Fail closed").
const reasonLapsed = "lapsed"

// steppedDown is told of every lease this node stops publishing under.
// The elector has logged it ("lease ended", with its reason).
func (n *Node) steppedDown(c elector.Change) {
	if c.Reason == reasonLapsed && n.cfg.OnFailClosed != nil {
		n.cfg.OnFailClosed(c.Topic)
	}
}
