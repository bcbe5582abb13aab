package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/wire"
)

// TopicsResult is the many-topics scenario: per topic count, a fresh
// cluster with one item published to each topic, then left idle, then its
// busiest node killed, then one node more.
type TopicsResult struct {
	Nodes int         `json:"nodes"`
	TTLms float64     `json:"lease_ttl_ms"`
	Rows  []TopicsRow `json:"rows"`
}

// TopicsRow is one topic count. A phase that did not finish within its
// deadline says so in its figures (nil times, counts of what is missing)
// and in Notes; the phases after it still run.
type TopicsRow struct {
	Topics int `json:"topics"`
	// Created counts the topics whose first item was acknowledged, in
	// CreateSeconds with topicsInFlight requests in flight.
	Created       int     `json:"created"`
	CreateSeconds float64 `json:"create_seconds"`
	// PublishedMs is the time from the last acknowledgement until every
	// created topic's item was published (its cursor at 1): the latest of
	// the cursors' commit times, not when the bench's probe saw it; nil if
	// not seen within DeadlineS (each later phase's deadline), when
	// Published counts those that were.
	PublishedMs *float64 `json:"all_published_ms"`
	Published   int      `json:"published"`
	// WitnessedS is the time from the last acknowledgement until the
	// nodes' witnesses had caught up with the new topics (their backlog,
	// baton_witness_rounds_*, at most a round a node); nil if not within
	// the settle phase, which then ends at its cap.
	WitnessedS *float64     `json:"witnesses_caught_up_s,omitempty"`
	DeadlineS  float64      `json:"phase_deadline_s"`
	Idle       *IdleFigures `json:"idle,omitempty"`
	// Status is GET /v1/status while idle, one request at a time:
	// StatusFailed of the StatusAsked failed, passed statusTimeout or were
	// not made before the phase's deadline.
	Status       Percentiles  `json:"status_latency"`
	StatusAsked  int          `json:"status_asked"`
	StatusFailed int          `json:"status_failed"`
	Leases       *LeaseSpread `json:"leases,omitempty"`
	Kill         *KillFigures `json:"kill,omitempty"`
	Join         *JoinFigures `json:"join,omitempty"`
	Notes        []string     `json:"notes,omitempty"`
}

// IdleFigures are measured over a window with no request to the nodes.
type IdleFigures struct {
	Seconds float64 `json:"seconds"`
	// CPU is each node's CPU time over the window, in % of one core.
	CPU    map[string]float64 `json:"cpu_percent"`
	CPUMax float64            `json:"cpu_percent_max"`
	RSSMB  map[string]float64 `json:"rss_mb"`
	// StoreOps is the store operations per second of all nodes together,
	// as their metrics count them (one per store call, a script is one),
	// and by operation.
	StoreOps     float64            `json:"store_ops_per_s"`
	StoreOpsByOp map[string]float64 `json:"store_ops_per_s_by_op"`
	// RedisCommands is every command Redis ran per second (INFO
	// commandstats; a script's own commands count too), RedisScripts the
	// scripts alone, RedisCPU the server's CPU in % of one core.
	RedisCommands *float64 `json:"redis_commands_per_s,omitempty"`
	RedisScripts  *float64 `json:"redis_scripts_per_s,omitempty"`
	RedisCPU      *float64 `json:"redis_cpu_percent,omitempty"`
	// LeasesTaken is how many topic leases the nodes acquired over the
	// window: 0 once the leases have settled (a balance step or a lapse
	// moves one).
	LeasesTaken int `json:"leases_taken"`
}

// KillFigures are the SIGKILL of the node holding the most topics: for
// each of its topics, the time from the signal until a terminal got the
// item published to it right after.
type KillFigures struct {
	Victim string      `json:"victim"`
	Topics int         `json:"topics"`
	Stats  Percentiles `json:"stats"`
	// LapseMs is when the victim's node lease ended (the at of its topics'
	// records), after the signal, and EndedBy why: "expired" when it
	// lapsed, which depends on where in its renewal period the node died
	// (TTL*3/4 to TTL), "crashed" when a survivor's peer watch found its
	// process gone (node/peers.go). AfterLapse is each topic's next item
	// after that: the hand-over's own work.
	LapseMs    *float64            `json:"lapse_ms,omitempty"`
	EndedBy    baton.ReleaseReason `json:"ended_by,omitempty"`
	AfterLapse Percentiles         `json:"after_lapse"`
	// Ack is each new item's publish request until its acknowledgement
	// (topicsInFlight at a time, through the survivors, during the
	// hand-over).
	Ack Percentiles `json:"ack"`
	// The new items are published through the survivors at the signal,
	// topicsInFlight at a time: on an engine that takes them slower than
	// the lapse, the last are not even in the store until seconds later,
	// whoever publishes. AppendedMs is when the last was acknowledged,
	// after the signal; AfterAppend is each topic's item from the signal
	// or from its acknowledgement, whichever came later: the wait the
	// hand-over added to it.
	AppendedMs  float64     `json:"appended_ms"`
	AfterAppend Percentiles `json:"after_append"`
	// Phases splits the hand-over on a sample of the orphans.
	Phases *KillPhases `json:"phases,omitempty"`
	// Late counts topics whose item no terminal got within DeadlineS.
	Late      int     `json:"late"`
	DeadlineS float64 `json:"deadline_s"`
}

// JoinFigures are one node more joining the survivors: the time until the
// locks are spread within balanceRatio, or nil if not within DeadlineS,
// and the spread at the end.
type JoinFigures struct {
	Node       string      `json:"node"`
	BalancedMs *float64    `json:"balanced_ms"`
	DeadlineS  float64     `json:"deadline_s"`
	Final      LeaseSpread `json:"final"`
}

const (
	// topicsInFlight bounds the requests the bench makes at once.
	topicsInFlight = 32
	// killInFlight bounds the new items' publish requests at the SIGKILL:
	// as many sources as topics would send them all at once; 32 at a time
	// took 1.7-3.4 s for 3,334 topics while the survivors took over, so
	// that the figure from the signal measured the bench's source.
	killInFlight = 256
	// balanceRatio is max/min leases per node that counts as balanced.
	balanceRatio = 1.25
	// statusTimeout bounds one GET /v1/status.
	statusTimeout = 10 * time.Second
)

func runTopics(ctx context.Context, e *env, p plan, r *Report) error {
	res := &TopicsResult{Nodes: e.cfg.Nodes, TTLms: float64(e.cfg.LeaseTTL.Milliseconds())}
	r.Topics = res
	var errs []error
	for _, n := range e.cfg.Topics {
		row, err := topicsRow(ctx, e, p, n)
		res.Rows = append(res.Rows, row)
		if err != nil {
			errs = append(errs, fmt.Errorf("%d topics: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// topicsRow runs one topic count on a fresh cluster. Only a cluster that
// does not start is an error; a phase past its deadline is a figure.
func topicsRow(ctx context.Context, e *env, p plan, n int) (TopicsRow, error) {
	row := TopicsRow{Topics: n, DeadlineS: p.topicsDeadline.Seconds()}
	note := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		row.Notes = append(row.Notes, s)
		e.logf("%d topics: %s", n, s)
	}
	c, err := e.startCluster(ctx, "topics-"+strconv.Itoa(n), e.cfg.Nodes, e.cfg.LeaseTTL, "--max-topics", strconv.Itoa(2*n))
	if err != nil {
		return row, err
	}
	defer c.close()
	hc := &http.Client{Transport: e.newTransport(topicsInFlight * 2), Timeout: statusTimeout}
	probe := &topicProbe{hc: hc, c: c}
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("tp-%05d", i)
	}

	// Create: one item to each topic.
	start := time.Now()
	created, last := publishEach(ctx, e, hc, c.bases(), topics, 1, topicsInFlight, p.topicsCreate, nil)
	row.Created = len(created)
	row.CreateSeconds = round1(last.Sub(start).Seconds())
	e.logf("%d topics: %d created", n, len(created))
	if len(created) < n {
		note("%d of %d topics created within %v", len(created), n, p.topicsCreate)
	}

	// Every topic has a publisher once its item is published.
	at, seen := probe.waitPublished(ctx, created, 1, topicsInFlight, p.topicsDeadline)
	row.Published = seen
	if at.IsZero() {
		note("not every topic published within %v: %d of %d", p.topicsDeadline, seen, len(created))
	} else {
		ms := float64(at.Sub(last).Microseconds()) / 1000
		row.PublishedMs = &ms
		e.logf("%d topics: all published %.0f ms after the last creation", n, ms)
	}

	// Let the last checkpoints be signed and witnessed: the idle window
	// starts once the witnesses have caught up (a burst of new topics
	// keeps them checking and cosigning for tens of seconds at 10,000),
	// and how long that took is a figure of its own.
	if d, ok := waitWitnesses(ctx, e, c, p.topicsSettle); ok {
		sec := round1(time.Since(last).Seconds())
		row.WitnessedS = &sec
		e.logf("%d topics: witnesses caught up %.1f s after the last creation (%.1f s of waiting)", n, sec, d.Seconds())
	} else {
		note("the witnesses had not caught up %v after the topics were published", p.topicsSettle)
	}
	idle, err := measureIdle(ctx, e, c, p.topicsIdle)
	if err != nil {
		note("idle: %v", err)
	}
	row.Idle = idle
	if idle != nil {
		e.logf("%d topics idle: CPU %v %% of a core, %.0f store ops/s", n, idle.CPU, idle.StoreOps)
	}

	row.StatusAsked = p.topicsStatusReqs
	row.Status, row.StatusFailed = statusLatency(ctx, hc, c, p.topicsStatusReqs, p.topicsDeadline)
	e.logf("%d topics: /v1/status %s", n, row.statusText())

	lctx, cancel := context.WithTimeout(ctx, p.topicsDeadline)
	spread, holders := probe.spread(lctx, created, topicsInFlight)
	cancel()
	row.Leases = &spread
	e.logf("%d topics: leases %v (%d unheld, %d not read within %v)", n, spread.PerNode, spread.Unheld, spread.Unread, p.topicsDeadline)

	if victim := spread.most(); victim != "" {
		var orphans []string
		for t, h := range holders {
			if h == victim {
				orphans = append(orphans, t)
			}
		}
		slices.Sort(orphans)
		row.Kill = killBusiest(ctx, e, c, hc, victim, orphans, p.topicsDeadline, note)
	} else {
		note("no node held a topic: no kill")
	}

	row.Join = joinOne(ctx, c, probe, created, p.topicsDeadline, note)
	return row, nil
}

// publishEach publishes one item at seq to each topic, topicsInFlight at
// a time, through the Go client, until d passes. It returns the topics
// acknowledged and when the last acknowledgement came.
// If onAck is not nil it is told of each acknowledged item, by its index
// in topics.
func publishEach(ctx context.Context, e *env, hc *http.Client, bases, topics []string, seq, conc int, d time.Duration, onAck func(i int, took time.Duration)) ([]string, time.Time) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cl, err := client.New(bases, client.Options{HTTP: hc, Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		return nil, time.Now()
	}
	pad := padFor(e.cfg.ItemSize)
	var mu sync.Mutex
	var done []string
	var last time.Time
	forEach(ctx, topics, conc, func(i int, t string) {
		sent := time.Now()
		u := baton.Update{ID: "k", Value: appendValue(nil, sent.UnixNano(), pad), MsgID: t + "-" + strconv.Itoa(seq)}
		if _, err := cl.Publish(ctx, t, []baton.Update{u}); err != nil {
			return
		}
		if onAck != nil {
			onAck(i, time.Since(sent))
		}
		mu.Lock()
		done = append(done, t)
		last = time.Now()
		mu.Unlock()
	})
	if last.IsZero() {
		last = time.Now()
	}
	return done, last
}

// waitWitnesses waits, up to max, until the witnesses of c's live nodes
// have caught up: their backlog (witnessBacklog) at most one round a node
// (the sweep's) in two scrapes in a row, a scrape every witnessPoll (a
// scrape reads every topic's status: seldom, not to slow them). It
// returns how long it waited and whether they caught up; a node without
// the gauges counts as caught up.
func waitWitnesses(ctx context.Context, e *env, c *cluster, max time.Duration) (time.Duration, bool) {
	start := time.Now()
	hc := &http.Client{Transport: e.newTransport(len(c.nodes)), Timeout: statusTimeout}
	defer hc.CloseIdleConnections()
	calm := 0
	wait := time.Second // first, the last commits' signals reach the witnesses
	for {
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(min(wait, max-time.Since(start))):
		}
		if backlog, nodes, ok := witnessesBacklog(ctx, hc, c); ok && backlog <= float64(nodes) {
			calm++
		} else {
			calm = 0
		}
		if calm >= 2 {
			return time.Since(start), true
		}
		if time.Since(start) >= max {
			return time.Since(start), false
		}
		wait = witnessPoll
	}
}

// witnessesBacklog sums the witness backlog of c's live nodes and counts
// them; ok is false if a node's metrics could not be read or parsed (not
// known to be caught up).
func witnessesBacklog(ctx context.Context, hc *http.Client, c *cluster) (backlog float64, nodes int, ok bool) {
	err := liveMetrics(ctx, hc, c, func(b []byte) error {
		v, _, err := witnessBacklog(b)
		backlog += v
		nodes++
		return err
	})
	return backlog, nodes, err == nil
}

// liveMetrics reads the metrics text of each of c's live nodes and hands
// it to fn, stopping at the first error.
func liveMetrics(ctx context.Context, hc *http.Client, c *cluster, fn func(text []byte) error) error {
	for _, n := range c.nodes {
		if !n.Alive() {
			continue
		}
		var b []byte
		if err := getJSON(ctx, hc, n.URL()+"/metrics", &b); err != nil {
			return fmt.Errorf("scrape %s: %w", n.Name, err)
		}
		if err := fn(b); err != nil {
			return fmt.Errorf("scrape %s: %w", n.Name, err)
		}
	}
	return nil
}

// witnessPoll is how often waitWitnesses reads the nodes' metrics.
const witnessPoll = 2 * time.Second

// measureIdle measures the nodes over a window in which the bench sends
// them nothing (see IdleFigures).
func measureIdle(ctx context.Context, e *env, c *cluster, window time.Duration) (*IdleFigures, error) {
	var rc *goredis.Client
	if e.engine == "redis" {
		if o, err := e.redisOptions(); err == nil {
			rc = goredis.NewClient(o)
			defer rc.Close()
		}
	}
	hc := &http.Client{Transport: e.newTransport(len(c.nodes)), Timeout: statusTimeout}
	// scrape sums the nodes' store operations by operation, and the
	// leases they acquired.
	scrape := func() (map[string]float64, float64, error) {
		sum := make(map[string]float64)
		var taken float64
		err := liveMetrics(ctx, hc, c, func(b []byte) error {
			ops, err := storeOps(b)
			if err != nil {
				return err
			}
			for k, v := range ops {
				sum[k] += v
			}
			n, _, err := metricSum(b, acquiredMetric)
			taken += n
			return err
		})
		return sum, taken, err
	}
	tm0 := time.Now()
	m0, taken0, err := scrape()
	if err != nil {
		return nil, err
	}
	cpu0 := cpuOf(c)
	var r0 map[string]int64
	var rcpu0 time.Duration
	if rc != nil {
		if r0, rcpu0, err = redisSnapshot(ctx, rc); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(window): // the measurement window itself
	}
	cpu1 := cpuOf(c)
	secs := time.Since(t0).Seconds()
	f := &IdleFigures{Seconds: round1(secs), CPU: make(map[string]float64), RSSMB: make(map[string]float64)}
	if rc != nil {
		r1, rcpu1, err := redisSnapshot(ctx, rc)
		if err != nil {
			return nil, err
		}
		cmds, scripts := redisDelta(r0, r1)
		a, b, cp := round1(float64(cmds)/secs), round1(float64(scripts)/secs), round1(100*(rcpu1-rcpu0).Seconds()/secs)
		f.RedisCommands, f.RedisScripts, f.RedisCPU = &a, &b, &cp
	}
	for name, d := range cpu1 {
		if d0, ok := cpu0[name]; ok {
			pct := round1(100 * (d - d0).Seconds() / secs)
			f.CPU[name] = pct
			f.CPUMax = max(f.CPUMax, pct)
		}
	}
	for _, n := range c.nodes {
		if kb, err := rssKB(n.Pid()); err == nil && n.Alive() {
			f.RSSMB[n.Name] = round1(float64(kb) / 1024)
		}
	}
	tm1 := time.Now()
	m1, taken1, err := scrape()
	if err != nil {
		return f, err
	}
	f.LeasesTaken = int(taken1 - taken0)
	tm2 := time.Now()
	m2, _, err := scrape()
	if err != nil {
		return f, err
	}
	opsSecs := tm1.Sub(tm0).Seconds()
	f.StoreOpsByOp = make(map[string]float64)
	var scrapeOps float64
	for op, v := range m2 {
		scrapeOps += v - m1[op]
	}
	e.logf("idle: a scrape of every node's metrics made %.0f store operations in %v, taken out", scrapeOps, tm2.Sub(tm1).Round(time.Millisecond))
	for op, v := range idleOps(m0, m1, m2, tm2.Sub(tm1).Seconds()/opsSecs) {
		f.StoreOpsByOp[op] = round1(v / opsSecs)
		f.StoreOps += v / opsSecs
	}
	f.StoreOps = round1(f.StoreOps)
	return f, nil
}

// statusLatency times k GET /v1/status, to each live node in turn, one at
// a time, until d passes.
func statusLatency(ctx context.Context, hc *http.Client, c *cluster, k int, d time.Duration) (Percentiles, int) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	bases := c.bases()
	var ms []float64
	for i := 0; i < k && ctx.Err() == nil; i++ {
		t0 := time.Now()
		if getJSON(ctx, hc, bases[i%len(bases)]+"/v1/status", nil) == nil {
			ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
		}
	}
	// Failed, or not tried before d passed.
	return sampleStats(ms), k - len(ms)
}

// killBusiest subscribes a terminal to each of the victim's topics on the
// other nodes, SIGKILLs the victim, publishes one item more to each of its
// topics at once and times each topic from the signal until its terminal
// got that item.
func killBusiest(ctx context.Context, e *env, c *cluster, hc *http.Client, victim string, orphans []string, d time.Duration, note func(string, ...any)) *KillFigures {
	k := &KillFigures{Victim: victim, Topics: len(orphans), DeadlineS: d.Seconds()}
	var others []string
	var vn = c.nodes[0]
	for _, n := range c.nodes {
		if n.Name == victim {
			vn = n
		} else if n.Alive() {
			others = append(others, n.URL())
		}
	}
	if len(others) == 0 {
		note("kill: no other node")
		return k
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	arrived := make([]atomic.Int64, len(orphans)) // Unix ns, 0 until the new item arrives
	var connected atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	shc := &http.Client{Transport: e.newTransport(len(orphans))}
	sem := make(chan struct{}, topicsInFlight)
	for i, t := range orphans {
		wg.Go(func() {
			sem <- struct{}{}
			held := true
			release := func() {
				if held {
					held = false
					<-sem
				}
			}
			defer release()
			path := "/v1/topics/" + url.PathEscape(t) + "/events"
			for try := 0; sctx.Err() == nil && arrived[i].Load() == 0; try++ {
				last := uint64(1) // the item made at creation
				_ = stream(sctx, shc, others[(i+try)%len(others)], path, 4096, &last, func() {
					if try == 0 {
						connected.Add(1)
						release()
					}
				}, func(data []byte) {
					if field(data, `"seq":`) >= 2 {
						arrived[i].CompareAndSwap(0, time.Now().UnixNano())
					}
				})
				release()
				if try > 0 {
					select {
					case <-sctx.Done():
					case <-time.After(100 * time.Millisecond): // a reconnection delay
					}
				}
			}
		})
	}
	if !waitFor(ctx, d, func() bool { return int(connected.Load()) == len(orphans) }) {
		note("kill: %d of %d terminals connected within %v", connected.Load(), len(orphans), d)
	}
	t0 := time.Now()
	vn.Kill()
	e.logf("SIGKILL %s, holder of %d topics", victim, len(orphans))
	acked := make([]atomic.Int64, len(orphans)) // Unix ns, 0 until acknowledged
	took := make([]atomic.Int64, len(orphans))  // ns from the request to its acknowledgement
	wg.Go(func() {
		phc := &http.Client{Transport: e.newTransport(killInFlight), Timeout: statusTimeout}
		publishEach(sctx, e, phc, others, orphans, 2, killInFlight, d, func(i int, d time.Duration) {
			took[i].Store(int64(d))
			acked[i].Store(time.Now().UnixNano())
		})
	})
	all := func() bool {
		for i := range arrived {
			if arrived[i].Load() == 0 {
				return false
			}
		}
		return true
	}
	waitFor(ctx, d, all)
	var ms []float64
	for i := range arrived {
		if at := arrived[i].Load(); at != 0 {
			ms = append(ms, float64(at-t0.UnixNano())/1e6)
		} else {
			k.Late++
		}
	}
	k.Stats = sampleStats(ms)
	var waited []float64
	for i := range arrived {
		at, ack := arrived[i].Load(), acked[i].Load()
		if at == 0 || ack == 0 {
			continue
		}
		k.AppendedMs = max(k.AppendedMs, float64(ack-t0.UnixNano())/1e6)
		waited = append(waited, float64(at-max(ack, t0.UnixNano()))/1e6)
	}
	k.AfterAppend = sampleStats(waited)
	var acks []float64
	for i := range took {
		if d := took[i].Load(); d > 0 {
			acks = append(acks, float64(d)/1e6)
		}
	}
	k.Ack = sampleStats(acks)
	if at, why, ok := endedAt(ctx, hc, others[0], orphans[0], victim); ok {
		lapse := float64(at.Sub(t0)) / 1e6
		k.LapseMs, k.EndedBy = &lapse, why
		after := make([]float64, len(ms))
		for i, m := range ms {
			after[i] = m - lapse
		}
		k.AfterLapse = sampleStats(after)
	}
	if k.Late > 0 {
		note("kill: %d of %d topics not published within %v", k.Late, len(orphans), d)
	}
	at := make([]int64, len(arrived))
	for i := range arrived {
		at[i] = arrived[i].Load()
	}
	if k.Phases = killPhases(ctx, hc, others[0], victim, orphans, at, t0); k.Phases != nil {
		p := k.Phases
		e.logf("kill of %s, %d topics sampled: acquired p50 %.0f ms, p99 %.0f ms; item committed p50 %.0f ms, p99 %.0f ms; then delivered p50 %.0f ms, p99 %.0f ms",
			victim, p.Sampled, p.Acquired.P50, p.Acquired.P99, p.Committed.P50, p.Committed.P99, p.Delivered.P50, p.Delivered.P99)
	}
	e.logf("kill of %s: p50 %.0f ms, p99 %.0f ms, max %.0f ms, %d late; after the lease ended (%s) p50 %.0f ms, p99 %.0f ms; items appended by %.0f ms (ack p50 %.1f ms, p99 %.1f ms), each published after the signal or its append p50 %.0f ms, p99 %.0f ms",
		victim, k.Stats.P50, k.Stats.P99, k.Stats.Max, k.Late, k.EndedBy, k.AfterLapse.P50, k.AfterLapse.P99, k.AppendedMs, k.Ack.P50, k.Ack.P99, k.AfterAppend.P50, k.AfterAppend.P99)
	if ttl := float64(e.cfg.LeaseTTL.Milliseconds()); k.Late > 0 || k.Stats.P99 > 5*ttl {
		e.keepFor(fmt.Sprintf("kill of %s: p99 %.0f ms and %d late, where a few lease TTLs (%.0f ms) are expected", victim, k.Stats.P99, k.Late, ttl))
	}
	return k
}

// lapsedAt reads when victim's lease of topic ended: the at of its
// expired record.
func endedAt(ctx context.Context, hc *http.Client, base, topic, victim string) (time.Time, baton.ReleaseReason, bool) {
	var out wire.HandoversResponse
	if err := getJSON(ctx, hc, base+"/v1/topics/"+url.PathEscape(topic)+"/handovers?limit=10", &out); err != nil {
		return time.Time{}, "", false
	}
	for _, h := range out.Handovers {
		if h.Holder == victim && (h.Reason == baton.ReasonExpired || h.Reason == baton.ReasonCrashed) {
			return h.At, h.Reason, true
		}
	}
	return time.Time{}, "", false
}

// joinOne starts one node more and reads the spread of the locks until it
// is within balanceRatio, or d passes.
func joinOne(ctx context.Context, c *cluster, probe *topicProbe, topics []string, d time.Duration, note func(string, ...any)) *JoinFigures {
	n, err := c.join(ctx)
	if err != nil {
		note("join: %v", err)
		return nil
	}
	j := &JoinFigures{Node: n.Name, DeadlineS: d.Seconds()}
	t0 := time.Now()
	dctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// Each node's own count of the topics it publishes, polled, says when
	// the leases are balanced; every topic's lock, read then, confirms it
	// (a whole read of 10,000 locks takes seconds: polled alone, it would
	// put the figure a pass late).
	for {
		if s := probe.publishing(dctx, len(topics)); dctx.Err() == nil && s.balanced(balanceRatio) {
			at := time.Since(t0)
			full, _ := probe.spread(dctx, topics, topicsInFlight)
			if dctx.Err() != nil && len(j.Final.PerNode) > 0 {
				break // a read cut short: the last whole one stands
			}
			j.Final = full
			if full.balanced(balanceRatio) {
				ms := float64(at.Microseconds()) / 1000
				j.BalancedMs = &ms
				return j
			}
		}
		if dctx.Err() != nil {
			break
		}
		select {
		case <-dctx.Done():
		case <-time.After(100 * time.Millisecond): // between reads, not synchronisation
		}
	}
	if len(j.Final.PerNode) == 0 {
		j.Final, _ = probe.spread(ctx, topics, topicsInFlight)
	}
	note("join: leases not within %.2f max/min after %v: %v", balanceRatio, d, j.Final.PerNode)
	return j
}
