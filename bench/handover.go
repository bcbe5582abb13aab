package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// HandoverResult is the hand-over scenario.
type HandoverResult struct {
	TTLms float64 `json:"lease_ttl_ms"`
	Nodes int     `json:"nodes"`
	// Kinds is one entry per fault: SIGKILL, SIGSTOP (past the TTL, then
	// SIGCONT), SIGTERM.
	Kinds []HandoverKind `json:"kinds"`
	// Records is the number of release records the faults left, and
	// Unexplained those beyond one per fault (spurious).
	Records     int `json:"records"`
	Unexplained int `json:"unexplained_records"`
	// Soak is full load with no fault, at the configured TTL and at 1s.
	Soak []SoakResult `json:"soak"`
}

// HandoverKind is the distribution of one kind of fault.
type HandoverKind struct {
	Kind string `json:"kind"`
	// Millis is each hand-over, from the signal until a terminal received
	// the first item of the successor's epoch.
	Millis []float64   `json:"millis"`
	Stats  Percentiles `json:"stats"`
	// StoreMillis is each hand-over as the release record has it: from the
	// release (or the expiry found) to the successor's acquisition.
	StoreMillis []float64 `json:"store_millis,omitempty"`
	// Fenced counts stopped victims that the store killed (SQLite: a
	// process stopped while holding the file's write lock).
	Fenced int `json:"fenced,omitempty"`
	// TargetMs is the p99 target; Met whether Stats.P99 is within it.
	TargetMs float64 `json:"target_p99_ms"`
	Met      bool    `json:"met"`
}

// SoakResult counts spurious hand-overs under full load.
type SoakResult struct {
	TTLms     float64 `json:"lease_ttl_ms"`
	Seconds   float64 `json:"seconds"`
	Terminals int     `json:"terminals"`
	// Acked is the closed-loop ingest rate kept up during the soak.
	Acked    float64 `json:"acked_items_per_s"`
	Spurious int     `json:"spurious_handovers"`
	// Reasons counts the spurious release records by reason.
	Reasons map[string]int `json:"reasons,omitempty"`
}

var faultKinds = []string{"SIGKILL", "SIGSTOP", "SIGTERM"}

func runHandover(ctx context.Context, e *env, p plan, r *Report) error {
	ttl := e.cfg.LeaseTTL
	res := &HandoverResult{TTLms: float64(ttl.Milliseconds()), Nodes: e.cfg.Nodes}
	r.Handover = res
	if err := handoverFaults(ctx, e, res); err != nil {
		return err
	}
	ttls := []time.Duration{ttl}
	if ttl != time.Second {
		ttls = append(ttls, time.Second)
	}
	for _, t := range ttls {
		s, err := soak(ctx, e, p, t)
		if err != nil {
			return fmt.Errorf("soak at TTL %v: %w", t, err)
		}
		res.Soak = append(res.Soak, s)
		e.logf("soak at TTL %v: %.0f items/s acked for %.0fs with %d terminals: %d spurious hand-overs %v", t, s.Acked, s.Seconds, s.Terminals, s.Spurious, s.Reasons)
	}
	return nil
}

// epochs records when the first item of every epoch reached a terminal.
type epochs struct {
	mu    sync.Mutex
	first map[uint64]time.Time
}

func (ep *epochs) seen(epoch uint64, at time.Time) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if t, ok := ep.first[epoch]; !ok || at.Before(t) {
		ep.first[epoch] = at
	}
}

// after returns the earliest first arrival of an epoch above e.
func (ep *epochs) after(e uint64) (time.Time, uint64) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var best time.Time
	var be uint64
	for k, t := range ep.first {
		if k > e && (best.IsZero() || t.Before(best)) {
			best, be = t, k
		}
	}
	return best, be
}

func handoverFaults(ctx context.Context, e *env, res *HandoverResult) error {
	ttl := e.cfg.LeaseTTL
	// A short SSE heartbeat lets terminals notice a stopped node's silence.
	c, err := e.startCluster(ctx, "handover", e.cfg.Nodes, ttl, "--sse-heartbeat", "200ms")
	if err != nil {
		return err
	}
	defer c.close()
	const topic = "ho"
	pad := padFor(e.cfg.ItemSize)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// One source and one terminal pinned to each node: while a node is
	// down, items keep coming in through the others and terminals on the
	// others see the successor's first item; the one pinned to the faulty
	// node resumes there when it is back.
	ep := &epochs{first: make(map[uint64]time.Time)}
	var sent atomic.Int64
	for i, n := range c.nodes {
		hc := &http.Client{Transport: e.newTransport(2), Timeout: 300 * time.Millisecond}
		ps := newPoster(hc, n.URL(), topic)
		wg.Go(func() {
			src := "h" + strconv.Itoa(i)
			for k := int64(0); ctx.Err() == nil; k++ {
				body := append(appendUpdate([]byte{'['}, src, k, time.Now().UnixNano(), pad), ']')
				if ps.post(ctx, body) == nil {
					sent.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
		cl, err := client.New([]string{n.URL()}, client.Options{Backoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			StreamIdle: time.Second, TLS: e.tls})
		if err != nil {
			return err
		}
		wg.Go(func() {
			_ = cl.Subscribe(ctx, topic, 0, func(ev client.Event) error {
				if ev.Type == wire.EventItem {
					ep.seen(ev.Item.Epoch, time.Now())
				}
				return nil
			})
		})
	}
	if !waitFor(ctx, 30*time.Second, func() bool { t, _ := ep.after(0); return !t.IsZero() }) {
		return fmt.Errorf("no item published within 30s")
	}
	sc := &http.Client{Timeout: 300 * time.Millisecond, Transport: e.newTransport(len(c.nodes))}
	holder := func() (*proc.Node, uint64) {
		var urls []string
		for _, n := range c.nodes {
			if n.Alive() {
				urls = append(urls, n.URL())
			}
		}
		cl, err := client.New(urls, client.Options{HTTP: sc})
		if err != nil {
			return nil, 0
		}
		name, epoch, err := cl.Holder(ctx, topic)
		if err != nil {
			return nil, 0
		}
		for _, h := range c.nodes {
			if h.Name == name && h.Alive() {
				return h, epoch
			}
		}
		return nil, 0
	}
	bound := func(kind string) float64 {
		crash := 150.0
		if e.engine == "redis" {
			crash = 100
		}
		if kind == "SIGTERM" {
			return 50
		}
		return res.TTLms + crash
	}
	kindOf := make(map[uint64]int) // victim's epoch -> index in res.Kinds
	for ki, kind := range faultKinds {
		hk := HandoverKind{Kind: kind, TargetMs: bound(kind)}
		for i := range e.cfg.Faults {
			var victim *proc.Node
			var epoch uint64
			// The holder must also have published under its epoch.
			if !waitFor(ctx, 30*time.Second, func() bool {
				victim, epoch = holder()
				if victim == nil {
					return false
				}
				t, _ := ep.after(epoch - 1)
				return !t.IsZero()
			}) {
				return fmt.Errorf("%s %d: no active publisher found within 30s", kind, i+1)
			}
			kindOf[epoch] = ki
			t0 := time.Now()
			switch kind {
			case "SIGKILL":
				victim.Kill()
			case "SIGSTOP":
				if err := victim.Pause(); err != nil {
					return err
				}
			case "SIGTERM":
				go victim.Stop(10 * time.Second)
			}
			var first time.Time
			var next uint64
			if !waitFor(ctx, 10*ttl+10*time.Second, func() bool { first, next = ep.after(epoch); return !first.IsZero() }) {
				if kind == "SIGSTOP" {
					_ = victim.Resume()
				}
				return fmt.Errorf("%s %d of %s: no successor published within %v", kind, i+1, victim.Name, 10*ttl+10*time.Second)
			}
			ms := float64(first.Sub(t0).Microseconds()) / 1000
			hk.Millis = append(hk.Millis, ms)
			e.logf("%s %d/%d of %s (epoch %d): epoch %d published after %.1f ms", kind, i+1, e.cfg.Faults, victim.Name, epoch, next, ms)
			// Bring the victim back as a standby.
			switch kind {
			case "SIGKILL":
				if err := victim.Restart(ctx); err != nil {
					return err
				}
			case "SIGSTOP":
				// A process stopped inside a SQLite write transaction
				// is killed by the others' store (see sqlite/fence.go):
				// then it comes back as a restarted standby.
				if err := victim.Resume(); err != nil || !victim.Alive() {
					select {
					case <-victim.Done():
					case <-time.After(5 * time.Second):
						return fmt.Errorf("SIGCONT %s: %v", victim.Name, err)
					}
					hk.Fenced++
					if err := victim.Restart(ctx); err != nil {
						return err
					}
				}
			case "SIGTERM":
				<-victim.Done()
				if err := victim.Restart(ctx); err != nil {
					return err
				}
			}
			// Let the victim rejoin (and a resumed zombie find it is fenced).
			time.Sleep(ttl / 4)
		}
		hk.Stats = sampleStats(hk.Millis)
		hk.Met = hk.Stats.P99 <= hk.TargetMs
		res.Kinds = append(res.Kinds, hk)
	}
	recs, err := c.handovers(ctx, topic)
	if err != nil {
		return fmt.Errorf("read hand-overs: %w", err)
	}
	res.Records = len(recs)
	res.Unexplained = max(0, len(recs)-len(faultKinds)*e.cfg.Faults)
	for _, h := range recs {
		if h.HandoverMS == nil {
			continue
		}
		if ki, ok := kindOf[h.Epoch]; ok {
			res.Kinds[ki].StoreMillis = append(res.Kinds[ki].StoreMillis, *h.HandoverMS)
		}
	}
	return nil
}

// soak runs full closed-loop ingest with terminals on a fresh cluster and
// counts the release records: with no fault injected, each is spurious.
func soak(ctx context.Context, e *env, p plan, ttl time.Duration) (SoakResult, error) {
	s := SoakResult{TTLms: float64(ttl.Milliseconds()), Seconds: p.soakDur.Seconds(), Terminals: p.terminals}
	c, err := e.startCluster(ctx, "soak-"+ttl.String(), e.cfg.Nodes, ttl)
	if err != nil {
		return s, err
	}
	defer c.close()
	const topic = "soak"
	pad := padFor(e.cfg.ItemSize)
	var posters []Sender
	hc := &http.Client{Transport: e.newTransport(e.cfg.Sources + 8), Timeout: 30 * time.Second}
	bases := c.bases()
	for _, b := range bases {
		posters = append(posters, newPoster(hc, b, topic))
	}
	g, err := startTerminals(ctx, &http.Client{Transport: e.newTransport(p.terminals)}, bases, topic, p.terminals, 64<<10, 50, 30*time.Second, false)
	if err != nil {
		return s, err
	}
	defer g.stop()
	if err := warmUp(ctx, g, posters[0], pad); err != nil {
		return s, err
	}
	cl := closedLoop(ctx, posters, e.cfg.Sources, 100, p.soakDur, pad)
	s.Acked = cl.rate
	if cl.errors*10 > cl.requests {
		return s, fmt.Errorf("%d of %d requests failed, first: %v", cl.errors, cl.requests, cl.firstErr)
	}
	recs, err := c.handovers(ctx, topic)
	if err != nil {
		return s, err
	}
	s.Spurious = len(recs)
	for _, r := range recs {
		if s.Reasons == nil {
			s.Reasons = make(map[string]int)
		}
		s.Reasons[string(r.Reason)]++
	}
	return s, nil
}
