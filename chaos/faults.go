package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"slices"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// victim is a publisher hit by a fault: the hand-over it causes is
// measured from the fault to the first item a terminal receives from a
// later epoch.
type victim struct {
	kind  nemesis.Kind
	topic string
	epoch uint64
	at    time.Time
}

// claim marks target as impaired by fault f, unless it already is or, for
// a node, unless that would leave no node alone.
func (r *run) claim(target string, node bool, f nemesis.Fault) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.impaired[target]; busy {
		return false
	}
	if node {
		// Only the nodes started first count: a joined node leaves, and
		// impairing it leaves them as they are.
		first := func(name string) bool {
			return slices.ContainsFunc(r.nodes, func(x *proc.Node) bool { return x.Name == name })
		}
		n := 0
		for t := range r.impaired {
			if first(t) {
				n++
			}
		}
		if first(target) && n+1 >= len(r.nodes) {
			return false
		}
	}
	r.impaired[target] = fmt.Sprintf("#%d %s", f.N, f.Kind)
	return true
}

// claimNode claims a live node for fault f, or records f as skipped.
func (r *run) claimNode(f nemesis.Fault, n *proc.Node) bool {
	if !n.Alive() {
		r.skip(f, n.Name+" is down")
		return false
	}
	if !r.claim(n.Name, true, f) {
		r.skip(f, n.Name+" is impaired already, or it is the last healthy node")
		return false
	}
	return true
}

func (r *run) release(target string) {
	r.mu.Lock()
	delete(r.impaired, target)
	r.mu.Unlock()
}

func (r *run) isImpaired(target string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.impaired[target]
	return ok
}

func (r *run) nodeByName(name string) *proc.Node {
	for _, n := range r.allNodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lock reads a topic's lock from a node that is alive and not impaired.
func (r *run) lock(ctx context.Context, topic string) (baton.LockState, error) {
	var st baton.LockState
	err := errors.New("no healthy node")
	for _, n := range r.nodes {
		if !n.Alive() || r.isImpaired(n.Name) {
			continue
		}
		if err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic+"/lock", &st); err == nil {
			return st, nil
		}
	}
	return st, err
}

func (r *run) getJSON(ctx context.Context, u string, out any) error {
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := r.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != nethttp.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		var we wire.ErrorResponse
		if json.Unmarshal(b, &we) == nil && we.Error != nil {
			we.Error.Status = resp.StatusCode
			return fmt.Errorf("GET %s: %w", u, we.Error) // errors.As finds it (audit)
		}
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *run) skip(f nemesis.Fault, why string) {
	r.mu.Lock()
	r.counts[f.Kind].Skipped++
	r.mu.Unlock()
	r.event(Event{Fault: f.N, Kind: "skip", Target: string(f.Kind), Detail: why})
}

func (r *run) injected(f nemesis.Fault, target, detail string) {
	r.mu.Lock()
	r.counts[f.Kind].Injected++
	r.mu.Unlock()
	r.event(Event{Fault: f.N, Kind: string(f.Kind), Target: target, Detail: detail})
}

func (r *run) healed(f nemesis.Fault, target, detail string) {
	r.event(Event{Fault: f.N, Kind: "heal", Target: target, Detail: detail})
}

// inject carries out one fault, holds it, and heals it.
func (r *run) inject(ctx context.Context, f nemesis.Fault) {
	switch f.Kind {
	case nemesis.SlowTerminal, nemesis.MoveTerminal:
		r.terminalFault(ctx, f)
		return
	case nemesis.RestartStore:
		r.restartStore(ctx, f)
		return
	case nemesis.Join:
		r.join(ctx, f)
		return
	case nemesis.Drain:
		r.drain(ctx, f)
		return
	}
	topic, st, err := r.target(ctx, f)
	if err != nil {
		r.skip(f, "read the lock of "+topic+": "+err.Error())
		return
	}
	var n *proc.Node
	var role string
	publisher := false // n holds the topic's lease: a hand-over must follow
	switch {
	case f.Kind == nemesis.RestartStandby:
		var standbys []*proc.Node
		for _, x := range r.allNodes() {
			if x.Alive() && !r.isImpaired(x.Name) && !(st.Held && st.Lease.Holder == x.Name) {
				standbys = append(standbys, x)
			}
		}
		if len(standbys) == 0 {
			r.skip(f, "no standby of "+topic)
			return
		}
		n, role = standbys[f.Node%len(standbys)], "standby of "+topic
	case f.Kind == nemesis.Partition && f.Node >= 0:
		n, role = r.nodes[f.Node%len(r.nodes)], "node"
		if st.Held && st.Lease.Holder == n.Name {
			role = fmt.Sprintf("publisher of %s (epoch %d)", topic, st.Lease.Epoch)
			publisher = true
		}
	default:
		if !st.Held {
			r.skip(f, topic+" has no publisher now")
			return
		}
		if n = r.nodeByName(st.Lease.Holder); n == nil {
			r.skip(f, topic+" is held by "+st.Lease.Holder+", not one of ours")
			return
		}
		role = fmt.Sprintf("publisher of %s (epoch %d)", topic, st.Lease.Epoch)
		publisher = true
	}
	if f.Kind == nemesis.Partition && !slices.Contains(r.nodes, n) {
		r.skip(f, n.Name+" joined during the run and has no proxy to cut")
		return
	}
	if !r.claimNode(f, n) {
		return
	}
	defer r.release(n.Name)
	target := n.Name + ", " + role
	// A hiccup may well end before the lease lapses: no hand-over to time.
	if publisher && f.Kind != nemesis.RestartStandby && f.Kind != nemesis.HiccupPublisher {
		r.mu.Lock()
		r.victims = append(r.victims, victim{kind: f.Kind, topic: topic, epoch: st.Lease.Epoch, at: time.Now()})
		r.mu.Unlock()
	}
	switch f.Kind {
	case nemesis.KillPublisher, nemesis.RestartStandby:
		n.Kill()
		r.injected(f, target, "SIGKILL")
		sleep(ctx, f.Hold)
		r.restartNode(ctx, f, n, "restarted after "+f.Hold.Round(time.Millisecond).String())
	case nemesis.TermPublisher:
		if err := n.Terminate(); err != nil {
			r.skip(f, "SIGTERM "+n.Name+": "+err.Error())
			return
		}
		r.injected(f, target, "SIGTERM (graceful hand-over)")
		select {
		case <-n.Done():
		case <-time.After(15 * time.Second):
			r.problem("%s did not exit within 15s of SIGTERM (fault #%d); killed", n.Name, f.N)
			n.Kill()
		}
		sleep(ctx, f.Hold)
		r.restartNode(ctx, f, n, "restarted after "+f.Hold.Round(time.Millisecond).String())
	case nemesis.PausePublisher, nemesis.HiccupPublisher:
		if err := n.Pause(); err != nil {
			r.skip(f, "SIGSTOP "+n.Name+": "+err.Error())
			return
		}
		r.injected(f, target, fmt.Sprintf("SIGSTOP for %v (lease TTL %v)", f.Hold.Round(time.Millisecond), r.c.LeaseTTL))
		sleep(ctx, f.Hold)
		if !n.Alive() {
			r.mu.Lock()
			r.counts[f.Kind].Fenced++
			r.mu.Unlock()
			// SQLite fences a writer stopped inside a transaction with
			// SIGKILL (sqlite/fence.go): the zombie is gone for good.
			r.restartNode(ctx, f, n, "was fenced (killed while stopped: "+fmt.Sprint(n.ExitErr())+"); restarted")
			return
		}
		_ = n.Resume()
		if f.Kind == nemesis.HiccupPublisher {
			r.healed(f, n.Name, "SIGCONT: its lease may have lapsed meanwhile")
		} else {
			r.healed(f, n.Name, "SIGCONT: a zombie that must find its lease gone")
		}
	case nemesis.Partition:
		i := slices.Index(r.nodes, n)
		r.proxies[i].Cut()
		r.injected(f, target, fmt.Sprintf("cut off the store for %v (lease TTL %v)", f.Hold.Round(time.Millisecond), r.c.LeaseTTL))
		sleep(ctx, f.Hold)
		r.proxies[i].Heal()
		r.healed(f, n.Name, "reconnected to the store")
	}
}

// manyTries is how many topics, from the one drawn on, a fault on a
// publisher tries in a run with many topics, where a topic may well be
// between two holders (or have had no item yet) when the fault comes.
const manyTries = 10

// target is the topic a fault falls on and its lock: topic #Topic or, with
// many topics, if that one has no publisher now, the next that has one.
func (r *run) target(ctx context.Context, f nemesis.Fault) (string, baton.LockState, error) {
	tries := 1
	if r.c.Many() && f.Kind != nemesis.RestartStandby && !(f.Kind == nemesis.Partition && f.Node >= 0) {
		tries = manyTries
	}
	var topic string
	var st baton.LockState
	var err error
	for i := range tries {
		topic = r.topics[(f.Topic+i)%len(r.topics)]
		if st, err = r.lock(ctx, topic); err != nil || st.Held {
			break
		}
	}
	return topic, st, err
}

// restartNode starts a node again, as a supervisor would: `baton serve`
// exits at once if it cannot open the store (Redis down, or loading its
// append-only file after a restart-store fault), so it is retried with
// backoff for up to a minute.
func (r *run) restartNode(ctx context.Context, f nemesis.Fault, n *proc.Node, detail string) {
	attempts, err := supervise(ctx, func() error { return n.Restart(ctx) })
	if err != nil {
		r.problem("restart %s (fault #%d): %v", n.Name, f.N, err)
		return
	}
	if attempts > 1 {
		detail += fmt.Sprintf(" (%d attempts: the store was not ready)", attempts)
	}
	r.healed(f, n.Name, detail)
}

// supervise calls start until it succeeds, with backoff, for up to a
// minute, as a supervisor would; it returns the attempts made.
func supervise(ctx context.Context, start func() error) (int, error) {
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return attempt, err
		}
		sleep(ctx, min(time.Duration(attempt)*200*time.Millisecond, time.Second)) // back off, then retry
	}
}

func (r *run) restartStore(ctx context.Context, f nemesis.Fault) {
	if r.redis == nil {
		r.skip(f, "not our own Redis")
		return
	}
	if !r.claim("store", false, f) {
		r.skip(f, "the store is being restarted already")
		return
	}
	defer r.release("store")
	r.redis.Kill()
	r.injected(f, "redis-server "+r.redis.Addr, "SIGKILL")
	sleep(ctx, f.Hold)
	if err := r.redis.Restart(ctx); err != nil {
		r.problem("restart redis-server (fault #%d): %v", f.N, err)
		return
	}
	r.healed(f, "redis-server", "restarted on its append-only file after "+f.Hold.Round(time.Millisecond).String())
}

func (r *run) terminalFault(ctx context.Context, f nemesis.Fault) {
	t := r.terms[f.Terminal%len(r.terms)]
	if !r.claim(t.Name, false, f) {
		r.skip(f, t.Name+" is slow already")
		return
	}
	defer r.release(t.Name)
	if err := t.Err(); err != nil {
		r.skip(f, t.Name+" has ended: "+err.Error())
		return
	}
	switch f.Kind {
	case nemesis.MoveTerminal:
		from := slices.IndexFunc(r.nodes, func(n *proc.Node) bool { return n.URL() == t.Node() })
		order := r.rotate(max(from, 0) + f.Node)
		last := t.Last()
		if err := t.Move(order); err != nil {
			r.problem("move %s (fault #%d): %v", t.Name, f.N, err)
			return
		}
		fromName := "?"
		if from >= 0 {
			fromName = r.nodes[from].Name
		}
		r.injected(f, t.Name, fmt.Sprintf("disconnected from %s at seq %d; resumes on %s", fromName, last, r.nodeByAddr(order[0])))
	case nemesis.SlowTerminal:
		before, last := t.Streams(), t.Last()
		t.SetSlow(nemesis.SlowRead)
		r.injected(f, t.Name, fmt.Sprintf("reads one item per %v for %v, from seq %d", nemesis.SlowRead, f.Hold.Round(time.Millisecond), last))
		sleep(ctx, f.Hold)
		t.SetSlow(0)
		// Once it reads at full speed again it drains what the kernel
		// holds and, if the server cut it off, resumes on a new stream.
		resumed := false
		deadline := time.Now().Add(10 * time.Second)
		for !resumed && time.Now().Before(deadline) && ctx.Err() == nil {
			resumed = t.Streams() > before
			sleep(ctx, 20*time.Millisecond) // poll interval
		}
		r.mu.Lock()
		if resumed {
			r.counts[f.Kind].Disconnected++
		}
		r.mu.Unlock()
		detail := fmt.Sprintf("reads at full speed again at seq %d; ", t.Last())
		if resumed {
			detail += "it was cut off and resumed on a new stream"
		} else {
			detail += "it was not cut off"
		}
		r.healed(f, t.Name, detail)
	}
}

func (r *run) nodeByAddr(addr string) string {
	for _, n := range r.nodes {
		if n.Addr == addr {
			return n.Name
		}
	}
	return addr
}

// healAll ends every fault still in effect: a node that is down is
// started, a stopped one continued, a cut proxy healed, the store started.
func (r *run) healAll(ctx context.Context) {
	if r.redis != nil && !r.redis.Alive() {
		if err := r.redis.Restart(ctx); err != nil {
			r.problem("restart redis-server at the end: %v", err)
		}
	}
	for _, p := range r.proxies {
		p.Heal()
	}
	for _, n := range r.nodes {
		_ = n.Resume()
		if !n.Alive() {
			r.restartNode(ctx, nemesis.Fault{}, n, "restarted at the end of the run")
		}
	}
	for _, t := range r.terms {
		t.SetSlow(0)
	}
}
