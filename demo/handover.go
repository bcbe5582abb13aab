package demo

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// epochs records when the first item of each epoch reached any terminal:
// the end of a hand-over as a user sees it. Terminals call seen from their
// own goroutines.
type epochs struct {
	mu          sync.Mutex
	first       map[uint64]time.Time
	publisherOf map[uint64]string
}

func (e *epochs) seen(d wire.Item, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		e.first, e.publisherOf = make(map[uint64]time.Time), make(map[uint64]string)
	}
	if t, ok := e.first[d.Epoch]; !ok || at.Before(t) {
		e.first[d.Epoch], e.publisherOf[d.Epoch] = at, d.Publisher
	}
}

// after returns the first delivery of an epoch later than epoch, its
// publisher and that epoch; a zero time if there is none yet.
func (e *epochs) after(epoch uint64) (time.Time, string, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for x, t := range e.first {
		if x > epoch {
			return t, e.publisherOf[x], x
		}
	}
	return time.Time{}, "", 0
}

// handOver signals the active publisher (kill: SIGKILL, term: SIGTERM)
// and measures until a terminal receives an item of a later epoch.
func (r *run) handOver(ctx context.Context, kind string) (Handover, error) {
	var victim *proc.Node
	var epoch uint64
	err := waitFor(ctx, 20*time.Second, func() bool {
		holder, e := r.currentHolder(ctx)
		for _, n := range r.nodes {
			if n.Name == holder && n.Alive() {
				victim, epoch = n, e
				return true
			}
		}
		return false
	})
	if err != nil {
		return Handover{}, fmt.Errorf("demo: no active publisher found: %w", err)
	}
	ho := Handover{From: victim.Name, FromEpoch: epoch}
	t0 := time.Now()
	switch kind {
	case "kill":
		ho.Signal = "SIGKILL"
		r.awaitWatched(ctx, victim.Name)
		r.logf("SIGKILL %s, the active publisher (epoch %d)", victim.Name, epoch)
		victim.Kill()
	case "term":
		ho.Signal = "SIGTERM"
		r.logf("SIGTERM %s, the active publisher (epoch %d)", victim.Name, epoch)
		go victim.Stop(10 * time.Second)
	}
	var first time.Time
	err = waitFor(ctx, 10*r.c.LeaseTTL+10*time.Second, func() bool {
		first, ho.To, ho.ToEpoch = r.epochs.after(epoch)
		return !first.IsZero()
	})
	if err != nil {
		return ho, fmt.Errorf("demo: no successor published after %s of %s: %w", ho.Signal, victim.Name, err)
	}
	ho.Millis = float64(first.Sub(t0).Microseconds()) / 1000
	// The reason is the store's: a SIGKILL's lease ends "crashed" when a
	// survivor's peer watch finds the process gone, "expired" when it
	// lapses (docs/design.md, step 2).
	hs, err := r.handoverRecords(ctx)
	if err != nil {
		return ho, fmt.Errorf("demo: read the release records: %w", err)
	}
	for _, h := range hs {
		if h.Epoch == epoch {
			ho.Reason = string(h.Reason)
		}
	}
	if ho.Reason == "" {
		return ho, fmt.Errorf("demo: no release record of epoch %d after %s of %s", epoch, ho.Signal, victim.Name)
	}
	r.logf("hand-over: %s -> %s (epoch %d), %.1f ms after %s", ho.From, ho.To, ho.ToEpoch, ho.Millis, ho.Signal)
	if kind == "term" {
		<-victim.Done()
	}
	return ho, nil
}

// awaitWatched waits, a few seconds at most, until every other live node
// watches the victim's process (GET /v1/status, watching), so that the
// kill shows the hand-over a crash gets once the nodes have seen each
// other (docs/design.md, "A crashed process seen at once").
func (r *run) awaitWatched(ctx context.Context, victim string) {
	cl, err := r.client()
	if err != nil {
		return
	}
	err = waitFor(ctx, 5*time.Second, func() bool {
		for _, n := range r.nodes {
			if n.Name == victim || !n.Alive() {
				continue
			}
			st, err := cl.Status(ctx, n.URL())
			if err != nil || !slices.Contains(st.Watching, victim) {
				return false
			}
		}
		return true
	})
	if err != nil {
		r.logf("the other nodes do not watch %s yet: its crash may wait for the lease TTL", victim)
	}
}

// client asks the demo's nodes its own questions, the first that answers.
func (r *run) client() (*client.Client, error) {
	return client.New(r.addrs, client.Options{HTTP: r.http})
}

// currentHolder asks the first node that answers who holds the topic's
// lease.
func (r *run) currentHolder(ctx context.Context) (string, uint64) {
	cl, err := r.client()
	if err != nil {
		return "", 0
	}
	holder, epoch, _ := cl.Holder(ctx, r.topic)
	return holder, epoch
}

// handoverRecords reads the topic's release records from the first node
// that answers.
func (r *run) handoverRecords(ctx context.Context) ([]wire.Handover, error) {
	cl, err := r.client()
	if err != nil {
		return nil, err
	}
	return cl.Handovers(ctx, r.topic)
}

// waitFor polls cond every 5ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
