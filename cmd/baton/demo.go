package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/workload"
	"github.com/baton-pub/baton/wire"
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
	SplitBrain int               `json:"split_brain"`
	Handovers  []demoHandover    `json:"handovers"`
	Records    []wire.Handover   `json:"records"`
	Anomalies  []checker.Anomaly `json:"anomalies,omitempty"`
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
	// A topic of its own, so a demo on a store that has seen others starts clean.
	topic := fmt.Sprintf("demo-%d", time.Now().UnixNano()%1_000_000_000)
	logf := func(format string, args ...any) {
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	logf("store %s, %d servers, lease TTL %v, logs in %s", redactURL(store), c.Nodes, c.LeaseTTL, dir)

	nodes := make([]*proc.Node, c.Nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil && n.Alive() {
				n.Stop(5 * time.Second)
			}
		}
	}()
	addrs := make([]string, len(nodes))
	for i := range nodes {
		name := "n" + strconv.Itoa(i+1)
		n, err := proc.Start(ctx, "", dir, name, store, "--lease-ttl", c.LeaseTTL.String())
		if err != nil {
			return nil, err
		}
		nodes[i], addrs[i] = n, n.Addr
		logf("started %s on %s", name, n.Addr)
	}

	h := checker.NewHistory()
	// Terminals, each first connected to a different node.
	terms := make([]*workload.Terminal, c.Terminals)
	follow := make(map[string][]string)
	// firstOfEpoch records when the first item of each epoch reached any
	// terminal: the end of a hand-over as a user sees it.
	var epochMu sync.Mutex
	firstOfEpoch := make(map[uint64]time.Time)
	publisherOf := make(map[uint64]string)
	onItem := func(d wire.Item, at time.Time) {
		epochMu.Lock()
		defer epochMu.Unlock()
		if t, ok := firstOfEpoch[d.Epoch]; !ok || at.Before(t) {
			firstOfEpoch[d.Epoch], publisherOf[d.Epoch] = at, d.Publisher
		}
	}
	for i := range terms {
		order := append(append([]string(nil), addrs[i%len(addrs):]...), addrs[:i%len(addrs)]...)
		name := "t" + strconv.Itoa(i+1)
		t, err := workload.StartTerminal(ctx, name, topic, order, h, workload.TerminalOptions{OnItem: onItem})
		if err != nil {
			return nil, err
		}
		terms[i] = t
		follow[name] = []string{topic}
	}
	defer func() {
		for _, t := range terms {
			if t != nil {
				t.Stop()
			}
		}
	}()
	src, err := workload.StartSource(ctx, "source", topic, addrs, c.Rate, h)
	if err != nil {
		return nil, err
	}
	defer src.Stop()

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
				var ds []int
				for _, t := range terms {
					ds = append(ds, t.Received())
				}
				holder, epoch := currentHolder(ctx, addrs, topic)
				logf("acked %d, delivered %v, publisher %s (epoch %d)", src.Acked(), ds, holder, epoch)
			}
		}
	}()
	endProgress := sync.OnceFunc(func() { close(stopProgress); pwg.Wait() })
	defer endProgress()

	rep := &demoReport{Store: redactURL(store)}
	if c.Keep {
		rep.Dir = dir
	}
	flow := func(n int, what string) error {
		target := src.Acked() + n
		if err := waitFor(ctx, 30*time.Second, func() bool { return src.Acked() >= target }); err != nil {
			return fmt.Errorf("demo: the source stalled %s: %w", what, err)
		}
		return nil
	}
	fault := func(kind string) error {
		ho, err := injectFault(ctx, c, nodes, addrs, topic, kind, logf, func(epoch uint64) (time.Time, string, uint64) {
			epochMu.Lock()
			defer epochMu.Unlock()
			for e, t := range firstOfEpoch {
				if e > epoch {
					return t, publisherOf[e], e
				}
			}
			return time.Time{}, "", 0
		})
		if err != nil {
			return err
		}
		rep.Handovers = append(rep.Handovers, ho)
		return nil
	}

	// Steady flow; SIGKILL the publisher; bring it back as a standby;
	// steady flow; SIGTERM the next publisher; a little more flow.
	if err := flow(c.Rate, "at start"); err != nil {
		return nil, err
	}
	if err := fault("kill"); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if !n.Alive() {
			if err := n.Restart(ctx); err != nil {
				return nil, err
			}
			logf("restarted %s as a standby", n.Name)
		}
	}
	if err := flow(c.Rate, "after the first hand-over"); err != nil {
		return nil, err
	}
	if err := fault("term"); err != nil {
		return nil, err
	}
	if err := flow(c.Rate/2, "after the second hand-over"); err != nil {
		return nil, err
	}
	srcErr := src.Stop()
	var maxSeq uint64
	for _, a := range h.Acks() {
		maxSeq = max(maxSeq, a.Seq)
	}
	logf("source stopped after %d acknowledgements; waiting for terminals to receive up to seq %d", src.Acked(), maxSeq)
	_ = waitFor(ctx, 30*time.Second, func() bool {
		for _, t := range terms {
			if t.Last() < maxSeq {
				return false
			}
		}
		return true
	})
	for _, t := range terms {
		if err := t.Stop(); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", t.Name, err))
		}
	}
	endProgress()

	records, err := handoverRecords(ctx, addrs, topic)
	if err != nil {
		rep.Problems = append(rep.Problems, "read hand-over records: "+err.Error())
	}
	rep.Records = records
	cr := h.Check(follow)
	rep.Acked, rep.Delivered, rep.Anomalies = cr.Acked, cr.Delivered, cr.Anomalies
	rep.Lost, rep.Duplicated, rep.Reordered, rep.Mismatched, rep.SplitBrain = cr.Lost, cr.Duplicated, cr.Reordered, cr.Mismatched, cr.SplitBrain
	if srcErr != nil {
		rep.Problems = append(rep.Problems, "source: "+srcErr.Error())
	}
	rep.Retries = src.Retries()
	rep.Seconds = time.Since(start).Seconds()
	rep.OK = cr.OK() && len(rep.Problems) == 0
	return rep, nil
}

// injectFault signals the active publisher (kill: SIGKILL, term: SIGTERM)
// and measures until a terminal receives an item of a later epoch.
func injectFault(ctx context.Context, c demoConfig, nodes []*proc.Node, addrs []string, topic, kind string,
	logf func(string, ...any), successor func(epoch uint64) (time.Time, string, uint64)) (demoHandover, error) {
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
		first, ho.To, ho.ToEpoch = successor(epoch)
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
	fmt.Fprintf(w, "lost: %d   duplicated: %d   out of order: %d   content mismatches: %d   split brain: %d\n",
		r.Lost, r.Duplicated, r.Reordered, r.Mismatched, r.SplitBrain)
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
	for _, a := range r.Anomalies {
		fmt.Fprintf(w, "ANOMALY: %s %s seq %d %s: %s\n", a.Kind, a.Topic, a.Seq, a.Terminal, a.Detail)
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

func handoverRecords(ctx context.Context, addrs []string, topic string) ([]wire.Handover, error) {
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
