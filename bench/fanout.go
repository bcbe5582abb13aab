package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	bhttp "github.com/baton-pub/baton/http"
)

// FanoutResult is the fan-out scenario: terminals on one node, once with
// each of the node's stream writers (SSEWriters), in one run.
type FanoutResult struct {
	Rows     []FanoutRow `json:"rows"`
	Spurious int         `json:"spurious_handovers"`
}

// FanoutRow is one number of terminals, on Baton or on the raw broadcaster.
type FanoutRow struct {
	Server string `json:"server"` // "baton" or "raw"
	// Writer is the node's stream writer (baton serve --sse-writer).
	Writer    string `json:"sse_writer,omitempty"`
	Terminals int    `json:"terminals"`
	// IdleKB is the server's RSS growth per idle connection, in KiB.
	IdleKB      float64 `json:"idle_kib_per_connection"`
	RSSBeforeKB int64   `json:"rss_before_kib"`
	RSSAfterKB  int64   `json:"rss_after_kib"`
	// Steps is the ramp of delivery rates tried, in order, until the first
	// one that failed (p99 at 100 ms or more, missing deliveries, a
	// disconnected terminal, or a source that fell behind).
	Steps []FanoutStep `json:"steps"`
	// Best is the highest measured deliveries/s of a step that passed.
	Best float64 `json:"best_deliveries_per_s"`
	// BestP99 is that step's p99 latency, BestGenCPU the load generator's
	// CPU in that step, in cores.
	BestP99    float64 `json:"best_p99_ms"`
	BestGenCPU float64 `json:"best_generator_cpu_cores"`
	// Ceiling and Ratio compare Baton with the raw broadcaster.
	Ceiling float64 `json:"ceiling_deliveries_per_s,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
}

// FanoutStep is one rate of the ramp.
type FanoutStep struct {
	Rate       float64     `json:"items_per_s"`
	Deliveries float64     `json:"deliveries_per_s"`
	Latency    Percentiles `json:"latency"`
	Missing    int64       `json:"missing_deliveries"`
	OK         bool        `json:"ok"`
	// GenCPU is the load generator's own CPU in this step, in cores.
	GenCPU float64 `json:"generator_cpu_cores"`
	Note   string  `json:"note,omitempty"`
}

// fanTarget is a server terminals connect to.
type fanTarget struct {
	name   string
	writer string // Baton's stream writer; "" for the raw broadcaster
	base   string // http://host:port, or https:// for Baton over TLS
	pid    int
	stop   func()
}

// SSEWriters are the stream writers the fan-out scenario measures, the
// default (the one the targets are about) first: see http/stream.go.
var SSEWriters = []string{bhttp.SSEWriterPool, bhttp.SSEWriterGoroutine}

func runFanout(ctx context.Context, e *env, p plan, r *Report) error {
	res := &FanoutResult{}
	r.Fanout = res
	for _, n := range p.fanoutSizes {
		for _, w := range SSEWriters {
			row, spurious, err := fanoutNode(ctx, e, p, n, w)
			res.Spurious += spurious
			if err != nil {
				return fmt.Errorf("%d terminals, %s writer: %w", n, w, err)
			}
			res.Rows = append(res.Rows, row)
		}
	}
	return nil
}

// fanoutNode runs the fan-out ramp against a fresh node with stream writer
// w, and counts the node's spurious hand-overs.
func fanoutNode(ctx context.Context, e *env, p plan, n int, w string) (FanoutRow, int, error) {
	name := "fanout-" + strconv.Itoa(n) + "-" + w
	c, err := e.startCluster(ctx, name, 1, e.cfg.LeaseTTL, "--sse-writer", w)
	if err != nil {
		return FanoutRow{}, 0, err
	}
	defer c.close()
	pid, err := pidOf(c.nodes[0], c.dir)
	if err != nil {
		return FanoutRow{}, 0, err
	}
	t := fanTarget{name: "baton", writer: w, base: c.nodes[0].URL(), pid: pid, stop: c.close}
	row, err := fanoutRamp(ctx, e, p, t, n)
	if err != nil {
		return row, 0, err
	}
	spurious, err := e.spurious(ctx, c, "fan")
	return row, spurious, err
}

// startRawSSE starts the raw broadcaster as a child process, like a node.
func startRawSSE(ctx context.Context, e *env, name string) (fanTarget, error) {
	exe := e.cfg.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fanTarget{}, err
		}
	}
	ready := filepath.Join(e.dir, name+".ready")
	logf, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return fanTarget{}, err
	}
	cmd := exec.Command(exe, "bench", "raw-sse", "--listen", "127.0.0.1:0", "--ready-file", ready)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fanTarget{}, fmt.Errorf("start raw broadcaster: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	}
	var addr string
	ok := waitFor(ctx, 15*time.Second, func() bool {
		b, err := os.ReadFile(ready)
		if err != nil {
			return false
		}
		var v struct{ Addr string }
		return json.Unmarshal(b, &v) == nil && (func() bool { addr = v.Addr; return addr != "" })()
	})
	if !ok {
		stop()
		return fanTarget{}, fmt.Errorf("raw broadcaster not serving within 15s; see %s", filepath.Join(e.dir, name+".log"))
	}
	return fanTarget{name: "raw", base: "http://" + addr, pid: cmd.Process.Pid, stop: stop}, nil
}

// fanoutReadBuf is a fan-out terminal's read buffer: 20 ms of 1,200 items
// of 128 bytes (about 7 KB) fits with room.
const fanoutReadBuf = 16 << 10

func fanoutRamp(ctx context.Context, e *env, p plan, t fanTarget, n int) (FanoutRow, error) {
	const topic = "fan"
	hc := &http.Client{Transport: e.newTransport(16), Timeout: 30 * time.Second}
	// Reads of up to fanoutReadBuf: a coalesced write of a busy stream
	// (http/stream_coalesce.go) is read in one system call, not one per
	// 4 KiB (net/http's default).
	tr := e.newTransport(n)
	tr.ReadBufferSize = fanoutReadBuf
	th := &http.Client{Transport: tr}
	defer th.CloseIdleConnections()
	connect := func(ctx context.Context) (*terminals, error) {
		return startTerminals(ctx, th, []string{t.base}, topic, n, fanoutReadBuf, 200, 60*time.Second, false)
	}
	row := FanoutRow{Server: t.name, Writer: t.writer, Terminals: n}
	return rampOn(ctx, e.logf, p, row, t.pid, newPoster(hc, t.base, topic), connect, padFor(e.cfg.ItemSize))
}

// rampOn measures row.Terminals terminals (connected by connect) of the
// server process pid: its RSS growth per idle terminal, then the ramp of
// delivery rates published through ps, until the first step that fails.
func rampOn(ctx context.Context, logf func(string, ...any), p plan, row FanoutRow, pid int, ps Sender,
	connect func(context.Context) (*terminals, error), pad string) (FanoutRow, error) {
	label, n := row.label(), row.Terminals
	// One item first, with no terminal, so that the server's first write
	// (store caches, its ledger copy) is not counted as the terminals'.
	if err := ps.Send(ctx, Batch{Src: "pre", First: time.Now().UnixNano(), Due: []int64{1}, Pad: pad}); err != nil {
		return row, fmt.Errorf("first item: %w", err)
	}
	time.Sleep(300 * time.Millisecond)
	var err error
	if row.RSSBeforeKB, err = rssKB(pid); err != nil {
		return row, err
	}
	logf("%s: connecting %d terminals", label, n)
	g, err := connect(ctx)
	if err != nil {
		return row, err
	}
	defer g.stop()
	if err := warmUp(ctx, g, ps, pad); err != nil {
		return row, err
	}
	time.Sleep(time.Second)
	if row.RSSAfterKB, err = rssKB(pid); err != nil {
		return row, err
	}
	row.IdleKB = float64(row.RSSAfterKB-row.RSSBeforeKB) / float64(n)
	logf("%s: %d idle terminals: RSS %d -> %d KiB, %.1f KiB per connection", label, n, row.RSSBeforeKB, row.RSSAfterKB, row.IdleKB)

	prev := 0.0
	for i, d := range p.fanoutRamp {
		rate := max(d/float64(n), 1)
		if rate == prev {
			continue // with many terminals the lowest steps are all 1 item/s
		}
		prev = rate
		st := FanoutStep{Rate: rate}
		start := time.Now()
		w := g.reset(start, 64)
		// At least 5 items per step, so that a step is not one burst.
		dur := max(p.fanoutStep, time.Duration(5/rate*float64(time.Second)))
		loop := &openLoop{Rate: rate, Dur: dur, Batch: 100, Senders: 4, Src: fmt.Sprintf("f%d-%.0f", i, rate), Pad: pad,
			Posters: []Sender{ps}, MaxLag: time.Second}
		cpu := startCPU()
		lr := loop.run(ctx)
		want := lr.Acked
		complete := waitFor(ctx, 2*time.Second, func() bool { return g.min() >= want || g.failed.Load() > 0 })
		st.GenCPU = cpu.cores()
		got := g.total()
		st.Missing = max(0, want*int64(n)-got)
		if el := time.Unix(0, g.lastAt.Load()).Sub(start); el > 0 {
			st.Deliveries = float64(got) / max(el, lr.Elapsed).Seconds()
		}
		st.Latency = percentilesOf(w.lat.Merge())
		switch {
		case lr.Aborted:
			st.Note = "the source fell more than 1s behind"
		case lr.Errors > 0:
			st.Note = fmt.Sprintf("%d requests failed: %v", lr.Errors, lr.FirstErr)
		case g.failed.Load() > 0:
			st.Note = fmt.Sprintf("%d terminals disconnected: %v", g.failed.Load(), g.err())
		case !complete:
			st.Note = fmt.Sprintf("%d deliveries missing 2s after the source stopped", st.Missing)
		case st.Latency.P99 >= 100:
			st.Note = "p99 at or above 100 ms"
		default:
			st.OK = true
		}
		row.Steps = append(row.Steps, st)
		verdict := "ok"
		if !st.OK {
			verdict = "FAILED: " + st.Note
		}
		logf("%s, %d terminals, %6.0f items/s: %9.0f deliveries/s, p50 %.1f p99 %.1f max %.1f ms, generator %.2f cores: %s",
			label, n, rate, st.Deliveries, st.Latency.P50, st.Latency.P99, st.Latency.Max, st.GenCPU, verdict)
		if !st.OK {
			break
		}
		if st.Deliveries > row.Best {
			row.Best, row.BestP99, row.BestGenCPU = st.Deliveries, st.Latency.P99, st.GenCPU
		}
	}
	return row, nil
}

// label names the server of a row: "raw", "baton" or "baton (WRITER)".
func (r FanoutRow) label() string {
	if r.Writer == "" {
		return r.Server
	}
	return r.Server + " (" + r.Writer + ")"
}

// isDefault reports whether the row is the raw broadcaster or Baton with
// its default writer: the rows the targets are about.
func (r FanoutRow) isDefault() bool {
	return r.Writer == "" || r.Writer == SSEWriters[0]
}
