package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/baton-pub/baton/internal/proc"
)

// Membership faults: a node joins for a while, or is drained and undrained.
// Both move topics by graceful hand-overs (docs/design.md "Node leases":
// balancing and drains); the checker judges those hand-overs like any
// other, from the release records (reason "released").

// drainWait bounds the wait for a drained node to hand every lease over,
// and for a joined node to be handed one: past it, the run reports a
// problem (the cluster did not move topics as it must).
const drainWait = 30 * time.Second

// claimWait bounds how long a drain waits for a node it may impair: kills,
// pauses and restarts can hold every node but the last healthy one for a
// while, and a drain that gave up at once would leave a run without one.
const claimWait = 5 * time.Second

// publishing is how many topics node n publishes, from its status.
func (r *run) publishing(ctx context.Context, n *proc.Node) (int, error) {
	st, err := r.admin.Status(ctx, n.URL())
	return st.Counts.Publishing, err
}

// join starts one more node, watches balancing hand it topics while it
// stays (Hold), and stops it with SIGTERM: a graceful leave that hands its
// topics back.
func (r *run) join(ctx context.Context, f nemesis.Fault) {
	if !r.claim("join", false, f) {
		r.skip(f, "a joined node is still up")
		return
	}
	defer r.release("join")
	r.mu.Lock()
	r.joins++
	name := fmt.Sprintf("n%d", len(r.nodes)+r.joins)
	r.mu.Unlock()
	start := time.Now()
	// `baton serve` exits at once if the store is not ready (Redis
	// loading after a restart-store fault): started as a supervisor would.
	var n *proc.Node
	_, err := supervise(ctx, func() error {
		var err error
		if n == nil {
			n, err = proc.Start(ctx, r.c.Exe, r.dir, name, r.store, r.serveArgs()...)
		} else {
			err = n.Restart(ctx)
		}
		return err
	})
	if err != nil {
		r.problem("join %s (fault #%d): %v", name, f.N, err)
		return
	}
	r.mu.Lock()
	r.joined = append(r.joined, n)
	r.mu.Unlock()
	r.injected(f, name, fmt.Sprintf("started on %s for %v: balancing must hand it topics", n.Addr, f.Hold.Round(time.Millisecond)))

	// Watch its leases while it stays; another fault may hit it meanwhile,
	// and a busy node may not answer every poll.
	var first time.Duration
	most, answered, unanswered, impaired := 0, 0, 0, false
	until := start.Add(f.Hold)
	for time.Now().Before(until) && ctx.Err() == nil {
		if r.isImpaired(name) || !n.Alive() {
			impaired = true
		} else if k, err := r.publishing(ctx, n); err == nil {
			answered++
			if k > 0 && first == 0 {
				first = time.Since(start)
			}
			most = max(most, k)
		} else {
			unanswered++
		}
		sleep(ctx, 100*time.Millisecond) // poll interval
	}

	// Leave once no other fault holds it.
	for !r.claim(name, false, f) && ctx.Err() == nil {
		sleep(ctx, 50*time.Millisecond) // poll interval
	}
	defer r.release(name)
	left := "SIGTERM: left gracefully"
	if n.Alive() {
		if err := n.Terminate(); err != nil {
			left = "SIGTERM: " + err.Error()
		}
		select {
		case <-n.Done():
		case <-time.After(15 * time.Second):
			r.problem("%s did not exit within 15s of SIGTERM (fault #%d); killed", name, f.N)
			n.Kill()
			<-n.Done()
		}
	} else {
		left = "was down: " + fmt.Sprint(n.ExitErr())
	}
	r.mu.Lock()
	r.joined = slices.DeleteFunc(r.joined, func(x *proc.Node) bool { return x == n })
	if most > 0 {
		r.counts[f.Kind].Balanced++
	}
	r.mu.Unlock()
	detail := fmt.Sprintf("%s after %v; it published up to %d topics, the first %v after it started", left,
		time.Since(start).Round(time.Millisecond), most, first.Round(time.Millisecond))
	if unanswered > 0 {
		detail += fmt.Sprintf(" (%d of %d status polls unanswered)", unanswered, answered+unanswered)
	}
	if most == 0 {
		detail = fmt.Sprintf("%s after %v; no status poll of %d answered showed a topic (%d unanswered)", left,
			time.Since(start).Round(time.Millisecond), answered, unanswered)
		if !impaired && answered >= 3*unanswered && f.Hold >= drainWait/6 {
			r.problem("%s joined (fault #%d) and published no topic within %v: balancing did not hand it any", name, f.N, f.Hold.Round(time.Millisecond))
		}
	}
	r.healed(f, name, detail)
}

// claimFree claims, for fault f, node #Node or the next one that is up and
// may be impaired, polling until one is or claimWait has passed.
func (r *run) claimFree(ctx context.Context, f nemesis.Fault) *proc.Node {
	deadline := time.Now().Add(claimWait)
	for {
		for i := range r.nodes {
			x := r.nodes[(f.Node+i)%len(r.nodes)]
			if x.Alive() && r.claim(x.Name, true, f) {
				return x
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		sleep(ctx, 100*time.Millisecond) // poll interval: faults end on their own timers
	}
}

// drain drains a node (POST /v1/drain), waits until it holds no lease,
// keeps it drained for Hold and undrains it (DELETE /v1/drain). The node
// is node #Node or, if another fault holds that one, the next one free,
// waiting up to claimWait for one to be.
func (r *run) drain(ctx context.Context, f nemesis.Fault) {
	n := r.claimFree(ctx, f)
	if n == nil {
		r.skip(f, fmt.Sprintf("every node was down or impaired, but for the last healthy one, for %v", claimWait))
		return
	}
	defer r.release(n.Name)
	held, _ := r.publishing(ctx, n)
	start := time.Now()
	d, err := r.admin.Drain(ctx, n.URL(), true)
	if err != nil {
		r.skip(f, "drain "+n.Name+": "+err.Error())
		return
	}
	r.injected(f, n.Name, fmt.Sprintf("POST /v1/drain: it published %d topics", held))
	for d.Leases > 0 && time.Since(start) < drainWait && ctx.Err() == nil {
		sleep(ctx, 100*time.Millisecond) // poll interval, as `baton drain` does
		if d, err = r.admin.Drain(ctx, n.URL(), true); err != nil {
			break
		}
	}
	var detail string
	switch {
	case err != nil:
		r.problem("drain %s (fault #%d): %v", n.Name, f.N, err)
		detail = "draining failed: " + err.Error()
	case d.Leases > 0:
		r.problem("drain %s (fault #%d): still publishes %d topics %v after the drain", n.Name, f.N, d.Leases, drainWait)
		detail = fmt.Sprintf("still published %d topics after %v", d.Leases, drainWait)
	default:
		r.mu.Lock()
		r.counts[f.Kind].Balanced++
		r.mu.Unlock()
		detail = fmt.Sprintf("handed every topic over in %v", time.Since(start).Round(time.Millisecond))
	}
	sleep(ctx, f.Hold)
	if _, err := r.admin.Drain(context.WithoutCancel(ctx), n.URL(), false); err != nil {
		r.problem("undrain %s (fault #%d): %v", n.Name, f.N, err)
		return
	}
	r.healed(f, n.Name, detail+fmt.Sprintf("; DELETE /v1/drain after %v more", f.Hold.Round(time.Millisecond)))
}
