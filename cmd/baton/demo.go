package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/spf13/cobra"
)

type demoConfig struct {
	Store     string
	JSON      bool
	Nodes     int
	Terminals int
	Rate      int
	LeaseTTL  time.Duration
	Keep      bool
}

func newDemo() *cobra.Command {
	var c demoConfig
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run 3 real servers, a source and terminals; kill and stop publishers; report",
		Long: `demo starts real 'baton serve' processes on one store, a source publishing at a
steady rate with retries, and terminals connected to different nodes. It
SIGKILLs the active publisher mid-stream, restarts it as a standby, later
SIGTERMs the next active publisher, and ends with a report: items acked,
delivered per terminal, lost, duplicated, out of order, and each hand-over
with its reason and duration. It exits non-zero if anything was lost,
duplicated or reordered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.Nodes < 2 {
				return baton.Invalidf("--nodes", "need at least 2 for a hand-over")
			}
			if c.Rate < 1 || c.Rate > 20000 {
				return baton.Invalidf("--rate", "%d out of range [1, 20000]", c.Rate)
			}
			if c.Terminals < 1 || c.Terminals > 1000 {
				return baton.Invalidf("--terminals", "%d out of range [1, 1000]", c.Terminals)
			}
			progress := io.Writer(cmd.ErrOrStderr())
			if !c.JSON {
				progress = cmd.OutOrStdout()
			}
			rep, err := runDemo(cmd.Context(), c, progress)
			if err != nil {
				return err
			}
			if c.JSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.Encode(rep)
			} else {
				rep.print(cmd.OutOrStdout())
			}
			if !rep.OK {
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Store, "store", os.Getenv("BATON_STORE"), "store URL (default: a fresh temporary SQLite file)")
	f.BoolVar(&c.JSON, "json", false, "print the report as JSON (progress goes to stderr)")
	f.IntVar(&c.Nodes, "nodes", 3, "servers to run")
	f.IntVar(&c.Terminals, "terminals", 3, "terminals, spread over the servers")
	f.IntVar(&c.Rate, "rate", 200, "items per second from the source")
	f.DurationVar(&c.LeaseTTL, "lease-ttl", 2*time.Second, "publish lease TTL of the servers")
	f.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (logs, database)")
	return cmd
}

// demoReport is the demo's verdict.
type demoReport struct {
	Store      string            `json:"store"`
	Seconds    float64           `json:"seconds"`
	Acked      int               `json:"acked"`
	Retries    int               `json:"retries"`
	Delivered  map[string]int    `json:"delivered"`
	Lost       int               `json:"lost"`
	Duplicated int               `json:"duplicated"`
	Reordered  int               `json:"reordered"`
	Mismatched int               `json:"mismatched"`
	Handovers  []demoHandover    `json:"handovers"`
	Records    []client.Handover `json:"records"`
	Problems   []string          `json:"problems,omitempty"`
	OK         bool              `json:"ok"`
	Dir        string            `json:"dir,omitempty"`
}

// demoHandover is one injected fault and how long until the successor
// published: from the signal to the first item a terminal received under
// the successor's epoch.
type demoHandover struct {
	Reason    string  `json:"reason"`
	Signal    string  `json:"signal"`
	From      string  `json:"from"`
	FromEpoch uint64  `json:"from_epoch"`
	To        string  `json:"to"`
	ToEpoch   uint64  `json:"to_epoch"`
	Millis    float64 `json:"millis"`
}

type ack struct {
	msgID string
	seq   uint64
	hash  baton.Hash
}

type received struct {
	at time.Time
	d  client.Delivered
}

type demoTerminal struct {
	name string
	mu   sync.Mutex
	got  []received
	err  error
}

func (t *demoTerminal) snapshot() []received {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]received(nil), t.got...)
}

func runDemo(ctx context.Context, c demoConfig, out io.Writer) (*demoReport, error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "baton-demo-")
	if err != nil {
		return nil, err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	store := c.Store
	if store == "" {
		store = "sqlite://" + filepath.Join(dir, "baton.db")
	}
	const topic = "demo"
	logf := func(format string, args ...any) {
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	logf("store %s, %d servers, lease TTL %v, logs in %s", store, c.Nodes, c.LeaseTTL, dir)

	nodes := make([]*proc.Node, c.Nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil && n.Alive() {
				n.Stop(5 * time.Second)
			}
		}
	}()
	for i := range nodes {
		name := "n" + strconv.Itoa(i+1)
		n, err := proc.Start(ctx, "", dir, name, store, "--lease-ttl", c.LeaseTTL.String())
		if err != nil {
			return nil, err
		}
		nodes[i] = n
		logf("started %s on %s", name, n.Addr)
	}
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var wg sync.WaitGroup

	// Terminals, each first connected to a different node.
	terms := make([]*demoTerminal, c.Terminals)
	termCtx, stopTerms := context.WithCancel(ctx)
	defer stopTerms()
	for i := range terms {
		t := &demoTerminal{name: "t" + strconv.Itoa(i+1)}
		terms[i] = t
		order := make([]string, len(addrs))
		for j := range addrs {
			order[j] = addrs[(i+j+len(addrs)-1)%len(addrs)] // pick() starts at index 1
		}
		cl, err := client.New(order, client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cl.Subscribe(termCtx, topic, 0, func(e client.Event) error {
				if e.Type != "item" {
					return nil
				}
				t.mu.Lock()
				t.got = append(t.got, received{at: time.Now(), d: e.Item})
				t.mu.Unlock()
				return nil
			})
			t.mu.Lock()
			t.err = err
			t.mu.Unlock()
		}()
	}

	// The source: one update at a time at a steady rate; each waits for its
	// acknowledgement (retrying across nodes with the same msg id).
	var retries atomic.Int64
	src, err := client.New(append([]string(nil), addrs...), client.Options{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnRetry: func(node string, err error) {
			if retries.Add(1) <= 3 {
				logf("source: retrying after %v", err)
			}
		}})
	if err != nil {
		return nil, err
	}
	var ackMu sync.Mutex
	var acks []ack
	var srcErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(c.Rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			u := baton.Update{ID: fmt.Sprintf("sensor.%d", i%10), Value: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`),
				MsgID: fmt.Sprintf("demo-%d", i)}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			rs, err := src.Publish(pctx, topic, []baton.Update{u})
			cancel()
			if err != nil {
				ackMu.Lock()
				srcErr = err
				ackMu.Unlock()
				return
			}
			ackMu.Lock()
			acks = append(acks, ack{msgID: u.MsgID, seq: rs[0].Seq, hash: rs[0].Hash})
			ackMu.Unlock()
		}
	}()

	ackCount := func() int { ackMu.Lock(); defer ackMu.Unlock(); return len(acks) }
	progress := func() {
		var ds []string
		for _, t := range terms {
			t.mu.Lock()
			ds = append(ds, strconv.Itoa(len(t.got)))
			t.mu.Unlock()
		}
		holder, epoch := currentHolder(ctx, addrs, topic)
		logf("acked %d, delivered %v, publisher %s (epoch %d)", ackCount(), ds, holder, epoch)
	}
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				progress()
			}
		}
	}()

	rep := &demoReport{Store: redactURL(store), Delivered: map[string]int{}}
	if c.Keep {
		rep.Dir = dir
	}
	fail := func(err error) (*demoReport, error) {
		close(stopProgress)
		pwg.Wait()
		return nil, err
	}

	// Phase 1: steady flow, then SIGKILL the publisher.
	if err := waitFor(ctx, 20*time.Second, func() bool { return ackCount() >= c.Rate }); err != nil {
		return fail(fmt.Errorf("demo: the source got no acknowledgements: %w (%v)", err, srcErr))
	}
	ho, err := injectFault(ctx, c, nodes, addrs, terms, topic, "kill", logf)
	if err != nil {
		return fail(err)
	}
	rep.Handovers = append(rep.Handovers, ho)
	// Bring the killed server back as a standby.
	for _, n := range nodes {
		if !n.Alive() {
			if err := n.Restart(ctx); err != nil {
				return fail(err)
			}
			logf("restarted %s as a standby", n.Name)
		}
	}

	// Phase 2: steady flow, then SIGTERM the publisher (graceful).
	target := ackCount() + c.Rate
	if err := waitFor(ctx, 20*time.Second, func() bool { return ackCount() >= target }); err != nil {
		return fail(fmt.Errorf("demo: the source stalled after the first hand-over: %w (%v)", err, srcErr))
	}
	ho, err = injectFault(ctx, c, nodes, addrs, terms, topic, "term", logf)
	if err != nil {
		return fail(err)
	}
	rep.Handovers = append(rep.Handovers, ho)

	// Phase 3: a little more flow, then stop the source and let every
	// terminal catch up with every acknowledged item.
	target = ackCount() + c.Rate/2
	if err := waitFor(ctx, 20*time.Second, func() bool { return ackCount() >= target }); err != nil {
		return fail(fmt.Errorf("demo: the source stalled after the second hand-over: %w (%v)", err, srcErr))
	}
	stopRun()
	ackMu.Lock()
	final := append([]ack(nil), acks...)
	ackMu.Unlock()
	var maxSeq uint64
	for _, a := range final {
		maxSeq = max(maxSeq, a.seq)
	}
	logf("source stopped after %d acknowledgements; waiting for terminals to receive up to seq %d", len(final), maxSeq)
	_ = waitFor(ctx, 30*time.Second, func() bool {
		for _, t := range terms {
			got := t.snapshot()
			if len(got) == 0 || got[len(got)-1].d.Seq < maxSeq {
				return false
			}
		}
		return true
	})
	stopTerms()
	wg.Wait()
	close(stopProgress)
	pwg.Wait()

	records, err := handoverRecords(ctx, addrs, topic)
	if err != nil {
		rep.Problems = append(rep.Problems, "read hand-over records: "+err.Error())
	}
	rep.Records = records
	checkDemo(rep, final, terms)
	if srcErr != nil && !errors.Is(srcErr, context.Canceled) {
		rep.Problems = append(rep.Problems, "source: "+srcErr.Error())
	}
	rep.Retries = int(retries.Load())
	rep.Seconds = time.Since(start).Seconds()
	rep.OK = rep.Lost == 0 && rep.Duplicated == 0 && rep.Reordered == 0 && rep.Mismatched == 0 && len(rep.Problems) == 0
	return rep, nil
}

// injectFault signals the active publisher (kill: SIGKILL, term: SIGTERM)
// and measures until a terminal receives an item of the successor's epoch.
func injectFault(ctx context.Context, c demoConfig, nodes []*proc.Node, addrs []string, terms []*demoTerminal, topic, kind string, logf func(string, ...any)) (demoHandover, error) {
	var victim *proc.Node
	var epoch uint64
	err := waitFor(ctx, 20*time.Second, func() bool {
		holder, e := currentHolder(ctx, addrs, topic)
		for _, n := range nodes {
			if n.Name == holder && n.Alive() {
				victim, epoch = n, e
				return true
			}
		}
		return false
	})
	if err != nil {
		return demoHandover{}, fmt.Errorf("demo: no active publisher found: %w", err)
	}
	ho := demoHandover{From: victim.Name, FromEpoch: epoch}
	t0 := time.Now()
	switch kind {
	case "kill":
		ho.Signal, ho.Reason = "SIGKILL", string(baton.ReasonExpired)
		logf("SIGKILL %s, the active publisher (epoch %d)", victim.Name, epoch)
		victim.Kill()
	case "term":
		ho.Signal, ho.Reason = "SIGTERM", string(baton.ReasonReleased)
		logf("SIGTERM %s, the active publisher (epoch %d)", victim.Name, epoch)
		go victim.Stop(10 * time.Second)
	}
	var first time.Time
	err = waitFor(ctx, 10*c.LeaseTTL+10*time.Second, func() bool {
		for _, t := range terms {
			for _, r := range t.snapshot() {
				if r.d.Epoch > epoch && r.at.After(t0) {
					if first.IsZero() || r.at.Before(first) {
						first, ho.To, ho.ToEpoch = r.at, r.d.Publisher, r.d.Epoch
					}
					break
				}
			}
		}
		return !first.IsZero()
	})
	if err != nil {
		return ho, fmt.Errorf("demo: no successor published after %s of %s: %w", ho.Signal, victim.Name, err)
	}
	ho.Millis = float64(first.Sub(t0).Microseconds()) / 1000
	logf("hand-over: %s -> %s (epoch %d), %.1f ms after %s", ho.From, ho.To, ho.ToEpoch, ho.Millis, ho.Signal)
	if kind == "term" {
		<-victim.Done()
	}
	return ho, nil
}

// checkDemo compares what the source was told with what terminals got.
func checkDemo(rep *demoReport, acks []ack, terms []*demoTerminal) {
	rep.Acked = len(acks)
	bySeq := make(map[uint64]ack, len(acks))
	var prev uint64
	for _, a := range acks {
		if other, ok := bySeq[a.seq]; ok && other.msgID != a.msgID {
			rep.Duplicated++ // two messages acknowledged at one seq
			rep.Problems = append(rep.Problems, fmt.Sprintf("seq %d acknowledged for %s and %s", a.seq, other.msgID, a.msgID))
		}
		bySeq[a.seq] = a
		if a.seq <= prev {
			rep.Reordered++ // acknowledged later, yet sequenced earlier
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s acked at seq %d after seq %d", a.msgID, a.seq, prev))
		}
		prev = a.seq
	}
	for _, t := range terms {
		got := t.snapshot()
		rep.Delivered[t.name] = len(got)
		seen := make(map[uint64]bool, len(got))
		msgSeq := make(map[string]uint64, len(got))
		var last uint64
		for _, r := range got {
			d := r.d
			if seen[d.Seq] {
				rep.Duplicated++
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: seq %d delivered twice", t.name, d.Seq))
			}
			seen[d.Seq] = true
			if s, ok := msgSeq[d.MsgID]; ok && s != d.Seq {
				rep.Duplicated++
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: msg %s published at seq %d and %d", t.name, d.MsgID, s, d.Seq))
			}
			msgSeq[d.MsgID] = d.Seq
			if d.Seq <= last {
				rep.Reordered++
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: seq %d after %d", t.name, d.Seq, last))
			}
			last = d.Seq
			it := baton.Item{Topic: "demo", Seq: d.Seq, ID: d.ID, Value: d.Value, MsgID: d.MsgID, Hash: d.Hash}
			if !it.Verify() {
				rep.Mismatched++
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: seq %d content does not match its hash", t.name, d.Seq))
			}
			if a, ok := bySeq[d.Seq]; ok && (a.hash != d.Hash || a.msgID != d.MsgID) {
				rep.Mismatched++
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: seq %d differs from what the source was told", t.name, d.Seq))
			}
		}
		for _, a := range acks {
			if !seen[a.seq] {
				rep.Lost++
				if rep.Lost <= 10 {
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s: acked seq %d (%s) never delivered", t.name, a.seq, a.msgID))
				}
			}
		}
		if t.err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", t.name, t.err))
		}
	}
}

func (r *demoReport) print(w io.Writer) {
	fmt.Fprintf(w, "\n== Baton demo report (%.1fs, store %s)\n", r.Seconds, r.Store)
	fmt.Fprintf(w, "acked by the source:  %d (%d retried)\n", r.Acked, r.Retries)
	names := make([]string, 0, len(r.Delivered))
	for n := range r.Delivered {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "delivered to %-8s %d\n", n+":", r.Delivered[n])
	}
	fmt.Fprintf(w, "lost: %d   duplicated: %d   out of order: %d   content mismatches: %d\n", r.Lost, r.Duplicated, r.Reordered, r.Mismatched)
	fmt.Fprintln(w, "hand-overs (fault -> first item from the successor, seen by a terminal):")
	for _, h := range r.Handovers {
		fmt.Fprintf(w, "  %-7s %s (epoch %d) -> %s (epoch %d): reason %s, %.1f ms\n", h.Signal, h.From, h.FromEpoch, h.To, h.ToEpoch, h.Reason, h.Millis)
	}
	fmt.Fprintln(w, "lock-released records in the store (release -> successor acquired):")
	for i := len(r.Records) - 1; i >= 0; i-- {
		h := r.Records[i]
		d := "no successor yet"
		if h.HandoverMS != nil {
			d = fmt.Sprintf("%.1f ms", *h.HandoverMS)
		}
		fmt.Fprintf(w, "  epoch %d %s: %s at seq %d -> %s\n", h.Epoch, h.Holder, h.Reason, h.LastSeq, d)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	if r.OK {
		fmt.Fprintln(w, "OK: every acknowledged item reached every terminal once, in order.")
	} else {
		fmt.Fprintln(w, "FAILED")
	}
}

func currentHolder(ctx context.Context, addrs []string, topic string) (string, uint64) {
	for _, a := range addrs {
		cl, err := client.New([]string{a}, client.Options{HTTP: shortHTTP})
		if err != nil {
			continue
		}
		st, err := cl.Status(ctx, "")
		if err != nil {
			continue
		}
		for _, t := range st.Topics {
			if t.Topic == topic && t.Held {
				return t.Holder, t.Epoch
			}
		}
		return "", 0
	}
	return "", 0
}

func handoverRecords(ctx context.Context, addrs []string, topic string) ([]client.Handover, error) {
	var lastErr error
	for _, a := range addrs {
		cl, err := client.New([]string{a}, client.Options{HTTP: shortHTTP})
		if err != nil {
			return nil, err
		}
		hs, err := cl.Handovers(ctx, topic)
		if err == nil {
			return hs, nil
		}
		lastErr = err
	}
	return nil, lastErr
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
