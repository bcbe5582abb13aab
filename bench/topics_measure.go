package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// LeaseSpread is how the held topic locks are spread over the live nodes.
type LeaseSpread struct {
	PerNode map[string]int `json:"per_node"`
	Max     int            `json:"max"`
	Min     int            `json:"min"`
	// Ratio is Max/Min; absent when a live node holds none (unbounded).
	Ratio *float64 `json:"ratio,omitempty"`
	// Unheld counts topics with no live lock when they were read, and
	// Unread those whose lock could not be read.
	Unheld int `json:"unheld"`
	Unread int `json:"unread,omitempty"`
}

// spreadOf counts the locks held by each of the live nodes; a topic held
// by any other name (a dead node whose lease has not lapsed yet) counts as
// unheld.
func spreadOf(live []string, holders map[string]string) LeaseSpread {
	s := LeaseSpread{PerNode: make(map[string]int, len(live))}
	for _, n := range live {
		s.PerNode[n] = 0
	}
	for _, h := range holders {
		if _, ok := s.PerNode[h]; ok {
			s.PerNode[h]++
		} else {
			s.Unheld++
		}
	}
	first := true
	for _, c := range s.PerNode {
		if first || c > s.Max {
			s.Max = c
		}
		if first || c < s.Min {
			s.Min = c
		}
		first = false
	}
	if s.Min > 0 {
		r := float64(s.Max) / float64(s.Min)
		s.Ratio = &r
	}
	return s
}

// balanced reports whether the spread is within ratio (max/min), with
// every topic held.
func (s LeaseSpread) balanced(ratio float64) bool {
	return s.Ratio != nil && *s.Ratio <= ratio && s.Unheld == 0 && s.Unread == 0
}

// most is the live node holding the most topics ("" if none holds any).
func (s LeaseSpread) most() string {
	best := ""
	for _, n := range slices.Sorted(maps.Keys(s.PerNode)) {
		if s.PerNode[n] > 0 && (best == "" || s.PerNode[n] > s.PerNode[best]) {
			best = n
		}
	}
	return best
}

// commandStats parses the calls of each command out of Redis's
// INFO commandstats ("cmdstat_NAME:calls=N,usec=...").
func commandStats(info string) (map[string]int64, error) {
	out := make(map[string]int64)
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("parse commandstats %q: %w", l, err)
				}
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out, sc.Err()
}

// scriptCommands run a script: INFO commandstats counts the commands a
// script runs under their own names as well, so these are the store
// operations that are one call each whatever they touch.
var scriptCommands = []string{"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}

// redisDelta is what Redis ran between two INFO commandstats: every
// command (script-internal ones included) and the scripts alone. The
// bench's own INFO calls are left out.
func redisDelta(before, after map[string]int64) (commands, scripts int64) {
	for name, n := range after {
		d := n - before[name]
		if name == "info" || d <= 0 {
			continue
		}
		commands += d
		if slices.Contains(scriptCommands, name) {
			scripts += d
		}
	}
	return commands, scripts
}

// storeOpsMetric is the histogram whose count is the node's store
// operations, by operation (metrics/store.go).
const storeOpsMetric = "baton_store_operation_duration_seconds_count"

// storeOps sums the counts of storeOpsMetric by operation in a Prometheus
// text exposition.
func storeOps(text []byte) (map[string]float64, error) {
	out := make(map[string]float64)
	for l := range bytes.SplitSeq(text, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(l, []byte(storeOpsMetric+"{"))
		if !ok {
			continue
		}
		labels, val, ok := bytes.Cut(rest, []byte("} "))
		if !ok {
			return nil, fmt.Errorf("parse metrics line %q", l)
		}
		op := "?"
		if _, v, ok := bytes.Cut(labels, []byte(`operation="`)); ok {
			op, _, _ = strings.Cut(string(v), `"`)
		}
		f, err := strconv.ParseFloat(string(bytes.Fields(val)[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("parse metrics line %q: %w", l, err)
		}
		out[op] += f
	}
	return out, nil
}

// idleOps is the store operations of a window by operation. Three scrapes
// of the nodes' metrics are made: a before the window, b after it and c
// right after b; a scrape reads the node's status, which reads every
// topic's lock, cursor and queue (metrics/topics.go), and at many topics
// that would swamp the idle figure. b-a is the window's operations plus one
// scrape's own; c-b is one scrape's own plus the idle operations of the
// short time between b and c, which is f times the window (f < 1). So the
// window's operations W solve W = (b-a) - ((c-b) - f*W).
func idleOps(a, b, c map[string]float64, f float64) map[string]float64 {
	if f < 0 || f > 0.5 {
		f = 0 // b and c too far apart to correct for: the figure is low
	}
	out := make(map[string]float64)
	for op, n := range b {
		if d := ((n - a[op]) - (c[op] - n)) / (1 - f); d > 0 {
			out[op] = d
		}
	}
	return out
}

// topicProbe reads topics over the HTTP API of a cluster's live nodes,
// rotating over them. Its reads are the cheap per-topic ones (lock,
// cursor): GET /v1/status reads every topic and is what is measured.
type topicProbe struct {
	hc   *http.Client
	c    *cluster
	next atomic.Uint64
}

func (p *topicProbe) live() []string {
	var out []string
	for _, n := range p.c.nodes {
		if n.Alive() {
			out = append(out, n.URL())
		}
	}
	return out
}

// get decodes GET path from a live node, trying each once.
func (p *topicProbe) get(ctx context.Context, path string, out any) error {
	bases := p.live()
	if len(bases) == 0 {
		return fmt.Errorf("get %s: no node alive", path)
	}
	k := int(p.next.Add(1))
	var err error
	for i := range bases {
		if err = getJSON(ctx, p.hc, bases[(k+i)%len(bases)]+path, out); err == nil {
			return nil
		}
	}
	return err
}

func getJSON(ctx context.Context, hc *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s: %s", u, resp.Status, bytes.TrimSpace(b[:min(len(b), 200)]))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// cursor is the topic's cursor: its published seq, and when it was
// committed.
func (p *topicProbe) cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	var c baton.Cursor
	err := p.get(ctx, "/v1/topics/"+url.PathEscape(topic)+"/cursor", &c)
	return c, err
}

// holders reads every topic's lock: the holder of each held one ("" for
// none); topics whose lock could not be read are left out and counted.
func (p *topicProbe) holders(ctx context.Context, topics []string, conc int) (map[string]string, int) {
	var mu sync.Mutex
	out := make(map[string]string, len(topics))
	unread := 0
	forEach(ctx, topics, conc, func(_ int, t string) {
		var st baton.LockState
		err := p.get(ctx, "/v1/topics/"+url.PathEscape(t)+"/lock", &st)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			unread++
		case st.Held:
			out[t] = st.Lease.Holder
		default:
			out[t] = ""
		}
	})
	if n := len(topics) - len(out) - unread; n > 0 {
		unread += n // not reached before ctx ended
	}
	return out, unread
}

// spread reads every topic's lock and spreads them over the live nodes.
func (p *topicProbe) spread(ctx context.Context, topics []string, conc int) (LeaseSpread, map[string]string) {
	h, unread := p.holders(ctx, topics, conc)
	var live []string
	for _, n := range p.c.nodes {
		if n.Alive() {
			live = append(live, n.Name)
		}
	}
	s := spreadOf(live, h)
	s.Unread = unread
	return s, h
}

// publishing reads how many topics each live node publishes now, from
// its GET /v1/status (counts.publishing: its own leases, live), one
// request per node: at 10,000 topics far quicker than reading every
// topic's lock (spread), so that a join is seen balanced when it is, not
// a whole pass of 10,000 reads later. A node that does not answer leaves
// the spread unread.
func (p *topicProbe) publishing(ctx context.Context, total int) LeaseSpread {
	h := make(map[string]string, total)
	var live []string
	unread, i := 0, 0
	for _, n := range p.c.nodes {
		if !n.Alive() {
			continue
		}
		live = append(live, n.Name)
		var st wire.Status
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		err := getJSON(sctx, p.hc, n.URL()+"/v1/status", &st)
		cancel()
		if err != nil {
			unread++
			continue
		}
		for range st.Counts.Publishing {
			h[strconv.Itoa(i)] = n.Name
			i++
		}
	}
	for ; i < total; i++ {
		h[strconv.Itoa(i)] = "" // unheld, or held twice in the counts' race
	}
	s := spreadOf(live, h)
	s.Unread = unread
	return s
}

// waitPublished polls the cursors of the topics not yet seen at seq or
// beyond until all are, or d passes. It returns when the last of them
// was published (zero if not all were seen) and how many were. That time
// is the latest commit time of the cursors read (the nodes share the
// bench's clock), not when the probe saw it: a pass over 10,000 cursors,
// 32 at a time, takes seconds, and the figure was the probe's.
func (p *topicProbe) waitPublished(ctx context.Context, topics []string, seq uint64, conc int, d time.Duration) (time.Time, int) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var seen atomic.Int64
	var latest time.Time // guarded by mu
	var mu sync.Mutex
	left := slices.Clone(topics)
	for {
		var still []string
		forEach(ctx, left, conc, func(_ int, t string) {
			c, err := p.cursor(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && c.Seq >= seq {
				seen.Add(1)
				at := c.UpdatedAt
				if at.IsZero() {
					at = time.Now() // an engine that keeps no commit time
				}
				if at.After(latest) {
					latest = at
				}
				return
			}
			still = append(still, t)
		})
		if int(seen.Load()) == len(topics) {
			mu.Lock()
			defer mu.Unlock()
			return latest, len(topics)
		}
		if ctx.Err() != nil {
			return time.Time{}, int(seen.Load())
		}
		left = still
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // between rounds, not synchronisation
		}
	}
}

// forEach calls fn for every topic, conc at a time, until ctx ends.
func forEach(ctx context.Context, topics []string, conc int, fn func(i int, topic string)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(topics)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(topics) {
					return
				}
				fn(i, topics[i])
			}
		})
	}
	wg.Wait()
}

// cpuOf reads each node's CPU time, by name.
func cpuOf(c *cluster) map[string]time.Duration {
	out := make(map[string]time.Duration)
	for _, n := range c.nodes {
		if !n.Alive() {
			continue
		}
		if d, err := proc.CPUTime(n.Pid()); err == nil {
			out[n.Name] = d
		}
	}
	return out
}

// redisCPU is the Redis server's CPU time (user plus system) so far.
func redisCPU(info string) time.Duration {
	var s float64
	for l := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			s += f
		}
	}
	return time.Duration(s * float64(time.Second))
}

// redisSnapshot is INFO commandstats and the server's CPU time.
func redisSnapshot(ctx context.Context, rc *goredis.Client) (map[string]int64, time.Duration, error) {
	stats, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read commandstats: %w", err)
	}
	cpu, err := rc.Info(ctx, "cpu").Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read redis cpu: %w", err)
	}
	m, err := commandStats(stats)
	return m, redisCPU(cpu), err
}

// round1 rounds to one decimal, for figures in JSON.
func round1(x float64) float64 { return math.Round(x*10) / 10 }

// witnessMetrics are the gauges of a node's witness backlog
// (metrics.Metrics.Witness).
var witnessMetrics = []string{"baton_witness_rounds_ready", "baton_witness_rounds_scheduled"}

// witnessBacklog sums the witness backlog gauges of a node's metrics text;
// ok is false if the node reports none (no witness, or an older build).
func witnessBacklog(text []byte) (n float64, ok bool, err error) {
	return metricSum(text, witnessMetrics...)
}

// acquiredMetric counts the topic leases a node acquired.
const acquiredMetric = "baton_lease_acquisitions_total"

// metricSum sums the unlabelled metrics named in a node's metrics text; ok
// is false if it has none of them.
func metricSum(text []byte, names ...string) (n float64, ok bool, err error) {
	for l := range bytes.SplitSeq(text, []byte{'\n'}) {
		for _, m := range names {
			rest, found := bytes.CutPrefix(l, []byte(m+" "))
			if !found {
				continue
			}
			f, perr := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
			if perr != nil {
				return 0, false, fmt.Errorf("parse metrics line %q: %w", l, perr)
			}
			n, ok = n+f, true
		}
	}
	return n, ok, nil
}
