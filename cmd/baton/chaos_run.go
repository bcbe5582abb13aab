package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/baton-pub/baton/internal/netproxy"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/workload"
)

// chaosRun is one chaos run: the processes, the workload, the nemesis and
// what they observed.
//
// Goroutines: runChaos owns the run; the nemesis loop starts one goroutine
// per fault (tracked by faults), which claims its target in the registry
// (mu) for as long as the fault lasts, so that two faults never hit one
// node at once and at least one node is always left alone.
type chaosRun struct {
	c      chaosConfig
	start  time.Time
	dir    string
	out    io.Writer
	engine string
	// store is the URL as the user gave it (or of our own Redis); nodes
	// may reach it through proxies.
	store   string
	redis   *proc.Redis // our own redis-server, if any
	nodes   []*proc.Node
	proxies []*netproxy.Proxy // per node, Redis only
	topics  []string
	srcs    []*workload.Source
	terms   []*workload.Terminal
	follow  map[string][]string
	h       *checker.History
	httpc   *nethttp.Client

	mu       sync.Mutex
	impaired map[string]string // node name or "store" or terminal name -> fault
	timeline []chaosEvent
	victims  []victim
	counts   map[nemesis.Kind]*faultCount
	problems []string
}

// victim is a publisher hit by a fault: the hand-over it causes is
// measured from the fault to the first item a terminal receives from a
// later epoch.
type victim struct {
	kind  nemesis.Kind
	topic string
	epoch uint64
	at    time.Time
}

// handoverTimes measures, per kind of fault, the time from the fault to the
// first item any terminal received under a later epoch of the topic.
func (r *chaosRun) handoverTimes() map[string]handoverTime {
	first := make(map[string]map[uint64]time.Time) // topic -> epoch -> first delivery
	for _, d := range r.h.Deliveries() {
		m := first[d.Topic]
		if m == nil {
			m = make(map[uint64]time.Time)
			first[d.Topic] = m
		}
		if t, ok := m[d.Epoch]; !ok || d.At.Before(t) {
			m[d.Epoch] = d.At
		}
	}
	r.mu.Lock()
	vs := append([]victim(nil), r.victims...)
	r.mu.Unlock()
	ms := make(map[string][]float64)
	for _, v := range vs {
		var next time.Time
		for e, t := range first[v.topic] {
			if e > v.epoch && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if !next.IsZero() && next.After(v.at) {
			ms[string(v.kind)] = append(ms[string(v.kind)], float64(next.Sub(v.at).Microseconds())/1000)
		}
	}
	out := make(map[string]handoverTime)
	for k, xs := range ms {
		slices.Sort(xs)
		out[k] = handoverTime{N: len(xs), P50: xs[len(xs)/2], P99: xs[min(len(xs)-1, len(xs)*99/100)], Max: xs[len(xs)-1]}
	}
	return out
}

func (r *chaosRun) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *chaosRun) event(e chaosEvent) {
	e.At = time.Since(r.start).Seconds()
	r.mu.Lock()
	r.timeline = append(r.timeline, e)
	r.mu.Unlock()
	r.logf("%s %s: %s", e.Kind, e.Target, e.Detail)
}

func (r *chaosRun) problem(format string, args ...any) {
	p := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.problems = append(r.problems, p)
	r.mu.Unlock()
	r.logf("PROBLEM: %s", p)
}

func runChaos(ctx context.Context, c chaosConfig, out io.Writer) (*chaosReport, error) {
	r := &chaosRun{c: c, start: time.Now(), out: out, h: checker.NewHistory(),
		httpc: &nethttp.Client{Timeout: time.Second}, impaired: make(map[string]string),
		counts: make(map[nemesis.Kind]*faultCount), follow: make(map[string][]string)}
	for _, k := range nemesis.AllKinds {
		r.counts[k] = &faultCount{}
	}
	var err error
	if r.dir, err = os.MkdirTemp("", "baton-chaos-"); err != nil {
		return nil, err
	}
	keep := c.Keep
	defer func() {
		if !keep {
			os.RemoveAll(r.dir)
		}
	}()
	defer r.teardown()

	if err := r.openStore(ctx); err != nil {
		return nil, err
	}
	kinds := r.kinds()
	plan, err := nemesis.Plan(nemesis.Config{Seed: c.Seed, Duration: c.Duration, Interval: c.Interval, TTL: c.LeaseTTL,
		Nodes: c.Nodes, Topics: c.Topics, Terminals: c.Topics * c.Terminals, Kinds: kinds})
	if err != nil {
		return nil, err
	}
	r.logf("seed %d, store %s (%s), %d servers, lease TTL %v, %d topics x %d sources x %d terminals, %v of faults every ~%v; work dir %s",
		c.Seed, redactURL(r.store), r.engine, c.Nodes, c.LeaseTTL, c.Topics, c.Sources, c.Terminals, c.Duration, c.Interval, r.dir)
	r.logf("replay: %s", r.replay())
	r.logf("schedule (%d faults):", len(plan))
	for _, f := range plan {
		r.counts[f.Kind].Planned++
		fmt.Fprintf(out, "    %s\n", f)
	}
	if err := r.startNodes(ctx); err != nil {
		keep = true
		return nil, fmt.Errorf("%w (logs kept in %s)", err, r.dir)
	}
	if err := r.startWorkload(ctx); err != nil {
		return nil, err
	}

	// The nemesis: each fault at its time, in a goroutine of its own.
	runCtx, stopRun := context.WithTimeout(ctx, c.Duration)
	defer stopRun()
	var faults sync.WaitGroup
	stopProgress := r.progress(runCtx)
	for _, f := range plan {
		if wait := time.Until(r.start.Add(f.At)); wait > 0 {
			select {
			case <-runCtx.Done():
			case <-time.After(wait):
			}
		}
		if runCtx.Err() != nil {
			break
		}
		faults.Go(func() { r.inject(ctx, f) })
	}
	<-runCtx.Done()
	stopProgress()
	if ctx.Err() != nil {
		faults.Wait() // their sleeps end with ctx
		return nil, ctx.Err()
	}
	r.logf("faults over: waiting for the last ones to heal")
	faults.Wait()
	r.healAll(ctx)

	rep := r.finish(ctx, plan)
	keep = keep || !rep.OK
	if keep {
		rep.Dir = r.dir
	}
	return rep, nil
}

// kinds are the faults this run may inject: those asked for that make
// sense for the store.
func (r *chaosRun) kinds() []nemesis.Kind {
	var out []nemesis.Kind
	for _, k := range nemesis.AllKinds {
		if !slices.Contains(r.c.Faults, "all") && !slices.Contains(r.c.Faults, string(k)) {
			continue
		}
		if k == nemesis.Partition && r.proxies == nil {
			continue // SQLite: one file on one machine; or a Redis URL we cannot proxy
		}
		if k == nemesis.RestartStore && r.redis == nil {
			continue // only a Redis of our own is restarted
		}
		out = append(out, k)
	}
	return out
}

// openStore picks the store and, for Redis, starts our own server if asked
// and a proxy per node.
func (r *chaosRun) openStore(ctx context.Context) error {
	s := r.c.Store
	switch {
	case s == "" || s == "sqlite":
		r.engine, r.store = "sqlite", "sqlite://"+filepath.Join(r.dir, "baton.db")
		return nil
	case strings.HasPrefix(s, "sqlite://"):
		r.engine, r.store = "sqlite", s
		return nil
	case s == "redis":
		dir := filepath.Join(r.dir, "redis")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		red, err := proc.StartRedis(ctx, dir)
		if err != nil {
			return err
		}
		r.redis, r.engine, r.store = red, "redis", red.URL(0)
	case strings.HasPrefix(s, "redis://"):
		r.engine, r.store = "redis", s
	case strings.HasPrefix(s, "rediss://"), strings.HasPrefix(s, "redis+sentinel://"):
		// No proxy for TLS or Sentinel: no partitions.
		r.engine, r.store = "redis", s
		return nil
	default:
		return baton.Invalidf("--store", "%q: want sqlite, sqlite://PATH, redis or redis://HOST:PORT/DB", redactURL(s))
	}
	u, err := url.Parse(r.store)
	if err != nil || u.Host == "" {
		return baton.Invalidf("--store", "%q is not a redis://HOST:PORT/DB URL", redactURL(s))
	}
	for range r.c.Nodes {
		p, err := netproxy.Listen("127.0.0.1:0", u.Host)
		if err != nil {
			return fmt.Errorf("start store proxy: %w", err)
		}
		r.proxies = append(r.proxies, p)
	}
	return nil
}

// nodeStore is the URL node i opens: through its proxy, if any.
func (r *chaosRun) nodeStore(i int) string {
	if r.proxies == nil {
		return r.store
	}
	u, _ := url.Parse(r.store)
	u.Host = r.proxies[i].Addr()
	return u.String()
}

func (r *chaosRun) startNodes(ctx context.Context) error {
	for i := range r.c.Nodes {
		name := "n" + strconv.Itoa(i+1)
		args := []string{"--lease-ttl", r.c.LeaseTTL.String(), "--sse-heartbeat", "200ms", "--log-level", "info"}
		if r.c.Retain > 0 {
			args = append(args, "--retain", strconv.FormatUint(r.c.Retain, 10))
		}
		n, err := proc.Start(ctx, "", r.dir, name, r.nodeStore(i), args...)
		if err != nil {
			return err
		}
		r.nodes = append(r.nodes, n)
		via := ""
		if r.proxies != nil {
			via = " (store via proxy " + r.proxies[i].Addr() + ")"
		}
		r.logf("started %s on %s%s", name, n.Addr, via)
	}
	return nil
}

func (r *chaosRun) addrs() []string {
	out := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = n.Addr
	}
	return out
}

// rotate returns the node addresses starting with node i.
func (r *chaosRun) rotate(i int) []string {
	a := r.addrs()
	i = ((i % len(a)) + len(a)) % len(a)
	return append(a[i:], a[:i]...)
}

func (r *chaosRun) startWorkload(ctx context.Context) error {
	// The workload's choices come from the seed too, on a stream of their
	// own. Topic names also carry the start time, so that a run on a
	// store that has seen others (or this seed before) starts clean.
	rng := rand.New(rand.NewPCG(r.c.Seed, 0x776f726b6c6f6164)) // "workload"
	stamp := strconv.FormatInt(r.start.UnixNano()%(36*36*36*36*36*36), 36)
	for k := range r.c.Topics {
		r.topics = append(r.topics, fmt.Sprintf("chaos-%d-%s-t%d", r.c.Seed, stamp, k+1))
	}
	for k, topic := range r.topics {
		for j := range r.c.Terminals {
			name := fmt.Sprintf("t%d.term%d", k+1, j+1)
			t, err := workload.StartTerminal(ctx, name, topic, r.rotate(rng.IntN(len(r.nodes))), r.h,
				workload.TerminalOptions{StreamIdle: time.Second, ReadBuffer: 8 << 10})
			if err != nil {
				return err
			}
			r.terms = append(r.terms, t)
			r.follow[name] = []string{topic}
		}
	}
	for k, topic := range r.topics {
		for j := range r.c.Sources {
			name := fmt.Sprintf("t%d.src%d", k+1, j+1)
			s, err := workload.StartSourceWith(ctx, name, topic, r.rotate(rng.IntN(len(r.nodes))), r.h, workload.SourceOptions{
				Rate: r.c.Rate, MaxBatch: r.c.MaxBatch, Resend: r.c.Resend, Seed: rng.Uint64()})
			if err != nil {
				return err
			}
			r.srcs = append(r.srcs, s)
		}
	}
	return nil
}

// progress prints a line every 5 s until the returned func is called.
func (r *chaosRun) progress(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			acked, minD := 0, -1
			for _, s := range r.srcs {
				acked += s.Acked()
			}
			for _, t := range r.terms {
				if d := t.Received(); minD < 0 || d < minD {
					minD = d
				}
			}
			r.mu.Lock()
			injected, impaired := 0, len(r.impaired)
			for _, c := range r.counts {
				injected += c.Injected
			}
			r.mu.Unlock()
			r.logf("acked %d, slowest terminal %d, faults injected %d, impaired now %d", acked, minD, injected, impaired)
		}
	}()
	return func() { cancel(); <-done }
}

// claim marks target as impaired by fault f, unless it already is or, for
// a node, unless that would leave no node alone.
func (r *chaosRun) claim(target string, node bool, f nemesis.Fault) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.impaired[target]; busy {
		return false
	}
	if node {
		n := 0
		for t := range r.impaired {
			if r.nodeByName(t) != nil {
				n++
			}
		}
		if n+1 >= len(r.nodes) {
			return false
		}
	}
	r.impaired[target] = fmt.Sprintf("#%d %s", f.N, f.Kind)
	return true
}

func (r *chaosRun) release(target string) {
	r.mu.Lock()
	delete(r.impaired, target)
	r.mu.Unlock()
}

func (r *chaosRun) isImpaired(target string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.impaired[target]
	return ok
}

func (r *chaosRun) nodeByName(name string) *proc.Node {
	for _, n := range r.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lock reads a topic's lock from a node that is alive and not impaired.
func (r *chaosRun) lock(ctx context.Context, topic string) (baton.LockState, error) {
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

func (r *chaosRun) getJSON(ctx context.Context, u string, out any) error {
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

func (r *chaosRun) skip(f nemesis.Fault, why string) {
	r.mu.Lock()
	r.counts[f.Kind].Skipped++
	r.mu.Unlock()
	r.event(chaosEvent{Fault: f.N, Kind: "skip", Target: string(f.Kind), Detail: why})
}

func (r *chaosRun) injected(f nemesis.Fault, target, detail string) {
	r.mu.Lock()
	r.counts[f.Kind].Injected++
	r.mu.Unlock()
	r.event(chaosEvent{Fault: f.N, Kind: string(f.Kind), Target: target, Detail: detail})
}

func (r *chaosRun) healed(f nemesis.Fault, target, detail string) {
	r.event(chaosEvent{Fault: f.N, Kind: "heal", Target: target, Detail: detail})
}

// inject carries out one fault, holds it, and heals it.
func (r *chaosRun) inject(ctx context.Context, f nemesis.Fault) {
	switch f.Kind {
	case nemesis.SlowTerminal, nemesis.MoveTerminal:
		r.terminalFault(ctx, f)
		return
	case nemesis.RestartStore:
		r.restartStore(ctx, f)
		return
	}
	topic := r.topics[f.Topic%len(r.topics)]
	st, err := r.lock(ctx, topic)
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
		for _, x := range r.nodes {
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
	if !n.Alive() {
		r.skip(f, n.Name+" is down")
		return
	}
	if !r.claim(n.Name, true, f) {
		r.skip(f, n.Name+" is impaired already, or it is the last healthy node")
		return
	}
	defer r.release(n.Name)
	target := n.Name + ", " + role
	if publisher && f.Kind != nemesis.RestartStandby {
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
	case nemesis.PausePublisher:
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
		r.healed(f, n.Name, "SIGCONT: a zombie that must find its lease gone")
	case nemesis.Partition:
		i := slices.Index(r.nodes, n)
		r.proxies[i].Cut()
		r.injected(f, target, fmt.Sprintf("cut off the store for %v (lease TTL %v)", f.Hold.Round(time.Millisecond), r.c.LeaseTTL))
		sleep(ctx, f.Hold)
		r.proxies[i].Heal()
		r.healed(f, n.Name, "reconnected to the store")
	}
}

// restartNode starts a node again, as a supervisor would: `baton serve`
// exits at once if it cannot open the store (Redis down, or loading its
// append-only file after a restart-store fault), so it is retried with
// backoff for up to a minute.
func (r *chaosRun) restartNode(ctx context.Context, f nemesis.Fault, n *proc.Node, detail string) {
	var err error
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		if err = n.Restart(ctx); err == nil {
			if attempt > 0 {
				detail += fmt.Sprintf(" (%d attempts: the store was not ready)", attempt+1)
			}
			r.healed(f, n.Name, detail)
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		sleep(ctx, min(time.Duration(attempt+1)*200*time.Millisecond, time.Second)) // back off, then retry
	}
	r.problem("restart %s (fault #%d): %v", n.Name, f.N, err)
}

func (r *chaosRun) restartStore(ctx context.Context, f nemesis.Fault) {
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

func (r *chaosRun) terminalFault(ctx context.Context, f nemesis.Fault) {
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

func (r *chaosRun) nodeByAddr(addr string) string {
	for _, n := range r.nodes {
		if n.Addr == addr {
			return n.Name
		}
	}
	return addr
}

// healAll ends every fault still in effect: a node that is down is
// started, a stopped one continued, a cut proxy healed, the store started.
func (r *chaosRun) healAll(ctx context.Context) {
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

// teardown stops every process and proxy; it is safe to call on a run
// that failed half-way.
func (r *chaosRun) teardown() {
	for _, s := range r.srcs {
		s.Stop()
	}
	for _, t := range r.terms {
		t.Stop()
	}
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		if n.Alive() {
			wg.Go(func() { n.Stop(5 * time.Second) })
		}
	}
	wg.Wait()
	for _, p := range r.proxies {
		p.Close()
	}
	if r.redis != nil {
		r.redis.Kill()
	}
}

// finish stops the sources, lets the terminals catch up, reads the
// hand-over records, checks, and verifies the ledger if this build can.
func (r *chaosRun) finish(ctx context.Context, plan []nemesis.Fault) *chaosReport {
	rep := &chaosReport{Seed: r.c.Seed, Replay: r.replay(), Store: redactURL(r.store), Engine: r.engine,
		Nodes: r.c.Nodes, Topics: r.topics, LeaseTTL: r.c.LeaseTTL.String(), Interval: r.c.Interval.String(),
		Schedule: plan, Faults: make(map[string]faultCount)}
	for _, s := range r.srcs {
		if err := s.Stop(); err != nil {
			r.problem("source %s: %v", s.Name, err)
		}
		rep.Workload.Retries += s.Retries()
		rep.Workload.Resent += s.Resent()
		rep.Workload.LostAcks += s.LostAcks()
	}
	maxSeq := make(map[string]uint64)
	for _, a := range r.h.Acks() {
		maxSeq[a.Topic] = max(maxSeq[a.Topic], a.Seq)
	}
	r.logf("sources stopped; waiting up to %v for every terminal to receive every acknowledged item", r.c.Drain)
	deadline := time.Now().Add(r.c.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := 0
		for _, t := range r.terms {
			if t.Last() < maxSeq[t.Topic] && t.Err() == nil {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		sleep(ctx, 20*time.Millisecond) // poll interval
	}
	for _, t := range r.terms {
		if err := t.Stop(); err != nil {
			r.problem("terminal %s ended on an error: %v", t.Name, err)
		}
		if t.Last() < maxSeq[t.Topic] {
			r.problem("terminal %s is at seq %d of %d after %v", t.Name, t.Last(), maxSeq[t.Topic], r.c.Drain)
		}
		rep.Workload.Moves += t.Moves()
		rep.Workload.Streams += t.Streams()
	}
	for _, topic := range r.topics {
		recs, err := r.handovers(ctx, topic)
		if err != nil {
			r.problem("read the hand-over records of %s: %v", topic, err)
			continue
		}
		r.h.HandoversSeen(topic, recs, len(recs) < 1000)
		for _, h := range recs {
			rep.Handovers++
			e := chaosEvent{At: h.At.Sub(r.start).Seconds(), Kind: "handover", Target: topic,
				Detail: fmt.Sprintf("epoch %d of %s %s at seq %d", h.Epoch, h.Holder, h.Reason, h.LastSeq)}
			if !h.SuccessorAt.IsZero() {
				e.Detail += fmt.Sprintf(" -> %s (epoch %d) after %.1f ms", h.Successor, h.SuccessorEpoch,
					float64(h.SuccessorAt.Sub(h.At).Microseconds())/1000)
			}
			r.mu.Lock()
			r.timeline = append(r.timeline, e)
			r.mu.Unlock()
		}
	}
	if r.c.Sabotage && len(r.terms) > 0 {
		t := r.terms[0]
		u := baton.Update{ID: "sabotage", Value: json.RawMessage(`"sabotage"`), MsgID: "sabotage"}
		r.h.Delivered(checker.Delivery{Terminal: t.Name, Topic: t.Topic, Seq: t.Last() + 2, ID: u.ID, Value: u.Value,
			MsgID: u.MsgID, Hash: baton.HashItem(t.Topic, u), Epoch: 1, Publisher: "sabotage", At: time.Now()})
		r.logf("sabotage: recorded a bogus delivery to %s at seq %d", t.Name, t.Last()+2)
	}
	// Every item appended must end up published, and no terminal may hold
	// one beyond the final cursor.
	rep.Cursors = make(map[string]uint64)
	for _, topic := range r.topics {
		cur, err := r.settle(ctx, topic, 30*time.Second)
		if err != nil {
			r.problem("%s: %v", topic, err)
			continue
		}
		rep.Cursors[topic] = cur
		r.h.PublishedSeen(topic, cur)
	}

	// Stop the servers gracefully before the ledger is verified, so that
	// it is read at rest.
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		if n.Alive() {
			wg.Go(func() { n.Stop(10 * time.Second) })
		}
	}
	wg.Wait()
	rep.Ledger = r.verifyLedger(ctx)
	if rep.Ledger.Ran && !rep.Ledger.OK {
		r.problem("baton ledger verify failed: %s", rep.Ledger.Output)
	}
	for topic, n := range rep.Ledger.Leaves {
		r.h.LedgerSeen(topic, n)
	}

	rep.Check = r.h.Check(r.follow)
	rep.HandoverMS = r.handoverTimes()
	rep.Workload.Acked, rep.Workload.Delivered = rep.Check.Acked, rep.Check.Delivered

	r.mu.Lock()
	for k, c := range r.counts {
		if c.Planned > 0 {
			rep.Faults[string(k)] = *c
			rep.Injected += c.Injected
		}
	}
	rep.Timeline = append([]chaosEvent(nil), r.timeline...)
	rep.Problems = append([]string(nil), r.problems...)
	r.mu.Unlock()
	slices.SortStableFunc(rep.Timeline, func(a, b chaosEvent) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	rep.Seconds = time.Since(r.start).Seconds()
	rep.OK = rep.Check.OK() && len(rep.Problems) == 0 && rep.Check.Acked > 0
	if rep.Check.Acked == 0 {
		rep.Problems = append(rep.Problems, "no item was acknowledged")
	}
	return rep
}

// handovers reads a topic's release records from any node.
func (r *chaosRun) handovers(ctx context.Context, topic string) ([]baton.ReleaseRecord, error) {
	var out struct {
		Handovers []baton.ReleaseRecord `json:"handovers"`
	}
	err := errors.New("no node alive")
	for _, n := range r.nodes {
		if !n.Alive() {
			continue
		}
		if err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic+"/handovers?limit=1000", &out); err == nil {
			return out.Handovers, nil
		}
	}
	return nil, err
}

// verifyLedger runs `baton ledger verify --store URL TOPIC` on each of the
// run's topics if this build has the command (the ledger is built
// separately), and reports its exit status. With --json it also learns each
// topic's number of leaves, which the checker compares with the cursor.
func (r *chaosRun) verifyLedger(ctx context.Context) ledgerCheck {
	cmd, _, err := newRoot().Find([]string{"ledger", "verify"})
	if err != nil || cmd == nil || cmd.Name() != "verify" {
		return ledgerCheck{Output: "not run: this build has no `baton ledger verify`"}
	}
	asJSON := cmd.Flags().Lookup("json") != nil
	exe, err := os.Executable()
	if err != nil {
		return ledgerCheck{Ran: true, Output: "find own executable: " + err.Error()}
	}
	lc := ledgerCheck{Ran: true, OK: true, Leaves: make(map[string]uint64)}
	var outs []string
	for _, topic := range r.topics {
		args := []string{"ledger", "verify", "--store", r.store}
		if asJSON {
			args = append(args, "--json")
		}
		vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		var stdout, stderr bytes.Buffer
		vc := exec.CommandContext(vctx, exe, append(args, topic)...)
		vc.Stdout, vc.Stderr = &stdout, &stderr
		err := vc.Run()
		cancel()
		var reps []struct {
			Topic    string
			Leaves   uint64
			Problems []struct{ Where, What string }
		}
		parsed := asJSON && json.Unmarshal(stdout.Bytes(), &reps) == nil && len(reps) == 1
		switch {
		case parsed:
			lc.Leaves[topic] = reps[0].Leaves
			line := fmt.Sprintf("%s: %d leaves", topic, reps[0].Leaves)
			for i, p := range reps[0].Problems {
				if i == 5 {
					line += fmt.Sprintf("; and %d more", len(reps[0].Problems)-5)
					break
				}
				line += fmt.Sprintf("; %s: %s", p.Where, p.What)
			}
			if err == nil {
				line += ": OK"
			}
			outs = append(outs, line)
		default:
			outs = append(outs, strings.TrimSpace(stdout.String()))
		}
		if err != nil {
			lc.OK = false
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				outs = append(outs, topic+": "+msg)
			} else if !parsed {
				outs = append(outs, topic+": "+err.Error())
			}
		}
	}
	lc.Output = strings.Join(outs, "\n")
	if len(lc.Output) > 4000 {
		lc.Output = lc.Output[:4000] + " ..."
	}
	return lc
}

// settle waits, once the sources have stopped, until every appended item
// of topic is published (the cursor is at the last appended seq, twice in a
// row), and returns the cursor.
func (r *chaosRun) settle(ctx context.Context, topic string, d time.Duration) (uint64, error) {
	deadline := time.Now().Add(d)
	var cur baton.Cursor
	var info baton.TopicInfo
	stable := 0
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		err = errors.New("no node alive")
		for _, n := range r.nodes {
			if !n.Alive() {
				continue
			}
			if err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic, &info); err == nil {
				err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic+"/cursor", &cur)
			}
			if err == nil {
				break
			}
		}
		if err == nil && cur.Seq == info.LastSeq {
			if stable++; stable == 2 {
				return cur.Seq, nil
			}
		} else {
			stable = 0
		}
		sleep(ctx, 100*time.Millisecond) // poll interval
	}
	if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("the cursor is at seq %d, %d items appended are not published after %v", cur.Seq, info.LastSeq-cur.Seq, d)
}

// replay is the command line that runs this schedule again.
func (r *chaosRun) replay() string {
	store := r.c.Store
	if store == "" {
		store = "sqlite"
	}
	s := fmt.Sprintf("baton chaos --store %s --nodes %d --duration %v --seed %d --topics %d --sources %d --terminals %d --rate %d --max-batch %d --resend %v --interval %v --lease-ttl %v",
		redactURL(store), r.c.Nodes, r.c.Duration, r.c.Seed, r.c.Topics, r.c.Sources, r.c.Terminals, r.c.Rate, r.c.MaxBatch, r.c.Resend, r.c.Interval, r.c.LeaseTTL)
	if r.c.Retain > 0 {
		s += fmt.Sprintf(" --retain %d", r.c.Retain)
	}
	if !slices.Contains(r.c.Faults, "all") {
		s += " --faults " + strings.Join(r.c.Faults, ",")
	}
	return s
}
