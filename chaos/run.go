package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/dial"
	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/baton-pub/baton/internal/netproxy"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/workload"
)

// run is one chaos run: the processes, the workload, the nemesis and
// what they observed.
//
// Goroutines: Run owns the run; the nemesis loop starts one goroutine
// per fault (tracked by faults), which claims its target in the registry
// (mu) for as long as the fault lasts, so that two faults never hit one
// node at once and at least one node is always left alone.
type run struct {
	c      Config
	start  time.Time
	dir    string
	out    io.Writer
	engine string
	// store is the URL as the user gave it (or of our own Redis); nodes
	// may reach it through proxies.
	store string
	redis *proc.Redis // our own redis-server, if any
	// nodes are the servers started first; faults that need a proxy or
	// an index (partition, drain) pick among them. A join fault adds one
	// more for a while, in joined (under mu).
	nodes   []*proc.Node
	proxies []*netproxy.Proxy // per node, Redis only
	topics  []string
	srcs    []*workload.Source
	terms   []*workload.Terminal
	follow  map[string][]string
	h       *checker.History
	httpc   *nethttp.Client
	admin   *client.Client // drains nodes

	mu       sync.Mutex
	impaired map[string]string // node name or "store" or terminal name -> fault
	timeline []Event
	victims  []victim
	counts   map[nemesis.Kind]*FaultCount
	problems []string
	joined   []*proc.Node
	joins    int // join faults injected so far: names the next node
}

func (r *run) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) event(e Event) {
	e.At = time.Since(r.start).Seconds()
	r.mu.Lock()
	r.timeline = append(r.timeline, e)
	r.mu.Unlock()
	r.logf("%s %s: %s", e.Kind, e.Target, e.Detail)
}

func (r *run) problem(format string, args ...any) {
	p := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.problems = append(r.problems, p)
	r.mu.Unlock()
	r.logf("PROBLEM: %s", p)
}

// Run carries out a chaos run: it starts the store (if asked), the
// servers and the workload, injects the planned faults for c.Duration,
// heals them, lets the terminals drain and judges the run. Progress goes
// to out as it happens. An error means the run could not be carried out;
// a run that found anomalies returns a Report whose OK is false. Run
// stops every process it started before it returns.
func Run(ctx context.Context, c Config, out io.Writer) (*Report, error) {
	r := &run{c: c, start: time.Now(), out: out, h: checker.NewHistory(),
		httpc: &nethttp.Client{Timeout: time.Second}, impaired: make(map[string]string),
		counts: make(map[nemesis.Kind]*FaultCount), follow: make(map[string][]string)}
	r.h.KeepItems(c.Retain) // a msg id is known while its item is kept
	for _, k := range nemesis.AllKinds {
		r.counts[k] = &FaultCount{}
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
		Nodes: c.Nodes, Topics: c.Topics, Terminals: c.TotalTerminals(), Kinds: kinds})
	if err != nil {
		return nil, err
	}
	shape := fmt.Sprintf("%d topics x %d sources x %d terminals", c.Topics, c.Sources, c.Terminals)
	if c.Many() {
		shape = fmt.Sprintf("%d topics, %d sources and %d terminals in all", c.Topics, c.Sources, c.Terminals)
	}
	r.logf("seed %d, store %s (%s), %d servers, lease TTL %v, %s, %v of faults every ~%v; work dir %s",
		c.Seed, dial.Redact(r.store), r.engine, c.Nodes, c.LeaseTTL, shape, c.Duration, c.Interval, r.dir)
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
func (r *run) kinds() []nemesis.Kind {
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
func (r *run) openStore(ctx context.Context) error {
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
		return baton.Invalidf("--store", "%q: want sqlite, sqlite://PATH, redis or redis://HOST:PORT/DB", dial.Redact(s))
	}
	u, err := url.Parse(r.store)
	if err != nil || u.Host == "" {
		return baton.Invalidf("--store", "%q is not a redis://HOST:PORT/DB URL", dial.Redact(s))
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
func (r *run) nodeStore(i int) string {
	if r.proxies == nil {
		return r.store
	}
	u, _ := url.Parse(r.store)
	u.Host = r.proxies[i].Addr()
	return u.String()
}

// serveArgs are the flags of every `baton serve` of the run.
func (r *run) serveArgs() []string {
	args := []string{"--lease-ttl", r.c.LeaseTTL.String(), "--sse-heartbeat", "200ms", "--log-level", "info"}
	if r.c.Retain > 0 {
		args = append(args, "--retain", strconv.FormatUint(r.c.Retain, 10))
	}
	return args
}

func (r *run) startNodes(ctx context.Context) error {
	for i := range r.c.Nodes {
		name := "n" + strconv.Itoa(i+1)
		n, err := proc.Start(ctx, r.c.Exe, r.dir, name, r.nodeStore(i), r.serveArgs()...)
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
	var err error
	r.admin, err = client.New(r.addrs(), client.Options{RequestTimeout: 5 * time.Second})
	return err
}

// allNodes are the nodes started first and the one joined, if any.
func (r *run) allNodes() []*proc.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(slices.Clip(r.nodes), r.joined...)
}

func (r *run) addrs() []string {
	out := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = n.Addr
	}
	return out
}

// rotate returns the node addresses starting with node i.
func (r *run) rotate(i int) []string {
	a := r.addrs()
	i = ((i % len(a)) + len(a)) % len(a)
	return append(a[i:], a[:i]...)
}

func (r *run) startWorkload(ctx context.Context) error {
	// The workload's choices come from the seed too, on a stream of their
	// own. Topic names also carry the start time, so that a run on a
	// store that has seen others (or this seed before) starts clean.
	rng := rand.New(rand.NewPCG(r.c.Seed, 0x776f726b6c6f6164)) // "workload"
	stamp := strconv.FormatInt(r.start.UnixNano()%(36*36*36*36*36*36), 36)
	for k := range r.c.Topics {
		r.topics = append(r.topics, fmt.Sprintf("chaos-%d-%s-t%d", r.c.Seed, stamp, k+1))
	}
	if r.c.Many() {
		return r.startSpread(ctx, rng)
	}
	for k, topic := range r.topics {
		for j := range r.c.Terminals {
			if err := r.startTerminal(ctx, rng, fmt.Sprintf("t%d.term%d", k+1, j+1), topic); err != nil {
				return err
			}
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

// startTerminal starts a terminal on topic, first on a node drawn from rng.
func (r *run) startTerminal(ctx context.Context, rng *rand.Rand, name, topic string) error {
	t, err := workload.StartTerminal(ctx, name, topic, r.rotate(rng.IntN(len(r.nodes))), r.h,
		workload.TerminalOptions{StreamIdle: time.Second, ReadBuffer: 8 << 10})
	if err != nil {
		return err
	}
	r.terms = append(r.terms, t)
	r.follow[name] = []string{topic}
	return nil
}

// startSpread starts the workload of a run with many topics: Terminals
// terminals, each on one topic drawn from the seed (distinct topics while
// there are enough), and Sources sources that each publish to every
// topic, starting at its own offset so that together they give every
// topic an item early, then to topics drawn at random.
func (r *run) startSpread(ctx context.Context, rng *rand.Rand) error {
	perm := rng.Perm(len(r.topics))
	for j := range r.c.Terminals {
		if err := r.startTerminal(ctx, rng, fmt.Sprintf("term%d", j+1), r.topics[perm[j%len(perm)]]); err != nil {
			return err
		}
	}
	for j := range r.c.Sources {
		off := j * len(r.topics) / r.c.Sources
		topics := append(slices.Clone(r.topics[off:]), r.topics[:off]...)
		name := fmt.Sprintf("src%d", j+1)
		s, err := workload.StartSourceWith(ctx, name, topics[0], r.rotate(rng.IntN(len(r.nodes))), r.h, workload.SourceOptions{
			Rate: r.c.Rate, MaxBatch: r.c.MaxBatch, Resend: r.c.Resend, Seed: rng.Uint64(), Topics: topics})
		if err != nil {
			return err
		}
		r.srcs = append(r.srcs, s)
	}
	return nil
}

// progress prints a line every 5 s until the returned func is called.
func (r *run) progress(ctx context.Context) func() {
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
			// Leases held, as the members' heartbeats report them: with
			// many topics, how much of the run has a publisher at all.
			held := "?"
			if st, err := r.admin.Status(ctx, ""); err == nil {
				held = fmt.Sprintf("%d of %d", st.Counts.Held, st.Counts.Topics)
			}
			r.logf("acked %d, slowest terminal %d, faults injected %d, impaired now %d, topics held %s", acked, minD, injected, impaired, held)
		}
	}()
	return func() { cancel(); <-done }
}

// teardown stops every process and proxy; it is safe to call on a run
// that failed half-way.
func (r *run) teardown() {
	for _, s := range r.srcs {
		s.Stop()
	}
	for _, t := range r.terms {
		t.Stop()
	}
	var wg sync.WaitGroup
	for _, n := range r.allNodes() {
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

// replay is the command line that runs this schedule again.
func (r *run) replay() string {
	store := r.c.Store
	switch {
	case store == "":
		store = "sqlite"
	case strings.Contains(store, "://"):
		store = dial.Redact(store) // the words sqlite and redis are no URL to redact
	}
	s := fmt.Sprintf("baton chaos --store %s --nodes %d --duration %v --seed %d --topics %d --sources %d --terminals %d --rate %d --max-batch %d --resend %v --interval %v --lease-ttl %v",
		store, r.c.Nodes, r.c.Duration, r.c.Seed, r.c.Topics, r.c.Sources, r.c.Terminals, r.c.Rate, r.c.MaxBatch, r.c.Resend, r.c.Interval, r.c.LeaseTTL)
	if r.c.Retain > 0 {
		s += fmt.Sprintf(" --retain %d", r.c.Retain)
	}
	if !slices.Contains(r.c.Faults, "all") {
		s += " --faults " + strings.Join(r.c.Faults, ",")
	}
	return s
}
