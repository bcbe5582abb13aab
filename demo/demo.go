// Package demo is `baton demo`: real `baton serve` processes on one store,
// a source publishing at a steady rate with retries, and terminals each
// first connected to a different server. The script SIGKILLs the active
// publisher mid-stream, restarts it as a standby, later SIGTERMs the next
// active publisher, and the report says what every terminal received and
// how long each hand-over took.
package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/dial"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/testcerts"
	"github.com/baton-pub/baton/internal/workload"
)

// Config is one demo run.
type Config struct {
	// Store is the store URL; "" means a fresh temporary SQLite file.
	Store     string
	Nodes     int
	Terminals int
	// Rate is the source's items per second.
	Rate     int
	LeaseTTL time.Duration
	// Keep keeps the run's directory (logs, database).
	Keep bool
	// Exe is the baton binary run as `serve`; "" means this executable.
	Exe string
	// TLS runs the servers over HTTPS, with a CA and certificates made in
	// the run's directory that the source and terminals trust.
	TLS bool
}

// Validate names the first bad field by its flag.
func (c *Config) Validate() error {
	switch {
	case c.Nodes < 2:
		return baton.Invalidf("--nodes", "need at least 2 for a hand-over")
	case c.Rate < 1 || c.Rate > 20000:
		return baton.Invalidf("--rate", "%d out of range [1, 20000]", c.Rate)
	case c.Terminals < 1 || c.Terminals > 1000:
		return baton.Invalidf("--terminals", "%d out of range [1, 1000]", c.Terminals)
	}
	return nil
}

// run is one demo run: its processes, the history they observed, and the
// first delivery of each epoch. Run owns it; the progress goroutine only
// reads the source and terminals, which are safe for concurrent use.
type run struct {
	c      Config
	start  time.Time
	out    io.Writer
	dir    string
	store  string
	topic  string
	nodes  []*proc.Node
	addrs  []string
	h      *checker.History
	terms  []*workload.Terminal
	follow map[string][]string
	src    *workload.Source
	epochs epochs
	// access is how the demo's clients reach the nodes (TLS or none).
	access  workload.Access
	tlsArgs []string     // the nodes' --tls-cert and --tls-key, if TLS
	http    *http.Client // the demo's own questions to the nodes
}

// Run carries out the demo and returns its report; progress goes to out as
// it happens. An error means the demo could not be carried out (a server
// did not start, the source stalled, no successor published); a demo that
// saw items lost, duplicated or reordered returns a Report whose OK is
// false. Run stops every process it started before it returns.
func Run(ctx context.Context, c Config, out io.Writer) (*Report, error) {
	r := &run{c: c, start: time.Now(), out: out, h: checker.NewHistory(), follow: make(map[string][]string)}
	var err error
	if r.dir, err = os.MkdirTemp("", "baton-demo-"); err != nil {
		return nil, err
	}
	if !c.Keep {
		defer os.RemoveAll(r.dir)
	}
	r.store = c.Store
	if r.store == "" {
		r.store = "sqlite://" + filepath.Join(r.dir, "baton.db")
	}
	// A topic of its own, so a demo on a store that has seen others starts clean.
	r.topic = fmt.Sprintf("demo-%d", time.Now().UnixNano()%1_000_000_000)
	r.logf("store %s, %d servers, lease TTL %v, logs in %s", dial.Redact(r.store), c.Nodes, c.LeaseTTL, r.dir)

	defer r.teardown()
	if c.TLS {
		if err := r.makeCerts(); err != nil {
			return nil, err
		}
	}
	if r.http, err = client.WithTLS(&http.Client{Timeout: 2 * time.Second}, r.access.TLS); err != nil {
		return nil, err
	}
	if err := r.startNodes(ctx); err != nil {
		return nil, err
	}
	if err := r.startWorkload(ctx); err != nil {
		return nil, err
	}
	endProgress := r.progress(ctx)
	defer endProgress()

	rep := &Report{Store: dial.Redact(r.store)}
	if c.Keep {
		rep.Dir = r.dir
	}
	if rep.Handovers, err = r.script(ctx); err != nil {
		return nil, err
	}
	srcErr := r.src.Stop()
	r.drain(ctx, rep)
	endProgress()
	r.judge(ctx, rep, srcErr)
	return rep, nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "[%5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) startNodes(ctx context.Context) error {
	for i := range r.c.Nodes {
		name := "n" + strconv.Itoa(i+1)
		n, err := proc.Start(ctx, r.c.Exe, r.dir, name, r.store, append([]string{"--lease-ttl", r.c.LeaseTTL.String()}, r.tlsArgs...)...)
		if err != nil {
			return err
		}
		r.nodes, r.addrs = append(r.nodes, n), append(r.addrs, n.URL())
		r.logf("started %s on %s", name, n.URL())
	}
	return nil
}

// startWorkload starts the terminals, each first connected to a different
// node, then the source.
func (r *run) startWorkload(ctx context.Context) error {
	for i := range r.c.Terminals {
		k := i % len(r.addrs)
		order := append(append([]string(nil), r.addrs[k:]...), r.addrs[:k]...)
		name := "t" + strconv.Itoa(i+1)
		t, err := workload.StartTerminal(ctx, name, r.topic, order, r.h, workload.TerminalOptions{OnItem: r.epochs.seen, Access: r.access})
		if err != nil {
			return err
		}
		r.terms = append(r.terms, t)
		r.follow[name] = []string{r.topic}
	}
	var err error
	r.src, err = workload.StartSourceWith(ctx, "source", r.topic, r.addrs, r.h, workload.SourceOptions{Rate: r.c.Rate, Access: r.access})
	return err
}

// makeCerts makes a CA and a certificate for the nodes in the run's
// directory, and has the demo's clients trust that CA.
func (r *run) makeCerts() error {
	ca, err := testcerts.NewCA(r.dir, "ca")
	if err != nil {
		return err
	}
	p, err := ca.Issue("node", testcerts.Server)
	if err != nil {
		return err
	}
	r.tlsArgs = []string{"--tls-cert", p.CertFile, "--tls-key", p.KeyFile}
	r.access.TLS, err = client.LoadTLS(client.TLSFiles{CAFile: ca.CertFile})
	r.logf("TLS: the servers' certificate is signed by %s", ca.CertFile)
	return err
}

// progress prints a line every second until the returned func is called
// (which may be called more than once).
func (r *run) progress(ctx context.Context) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var ds []int
				for _, t := range r.terms {
					ds = append(ds, t.Received())
				}
				holder, epoch := r.currentHolder(ctx)
				r.logf("acked %d, delivered %v, publisher %s (epoch %d)", r.src.Acked(), ds, holder, epoch)
			}
		}
	})
	return sync.OnceFunc(func() { close(stop); wg.Wait() })
}

// script is the demo proper: steady flow; SIGKILL the publisher; bring it
// back as a standby; steady flow; SIGTERM the next publisher; a little
// more flow. It returns the two hand-overs.
func (r *run) script(ctx context.Context) ([]Handover, error) {
	if err := r.flow(ctx, r.c.Rate, "at start"); err != nil {
		return nil, err
	}
	killed, err := r.handOver(ctx, "kill")
	if err != nil {
		return nil, err
	}
	for _, n := range r.nodes {
		if !n.Alive() {
			if err := n.Restart(ctx); err != nil {
				return nil, err
			}
			r.logf("restarted %s as a standby", n.Name)
		}
	}
	if err := r.flow(ctx, r.c.Rate, "after the first hand-over"); err != nil {
		return nil, err
	}
	stopped, err := r.handOver(ctx, "term")
	if err != nil {
		return nil, err
	}
	if err := r.flow(ctx, r.c.Rate/2, "after the second hand-over"); err != nil {
		return nil, err
	}
	return []Handover{killed, stopped}, nil
}

// flow waits until the source has n more acknowledgements.
func (r *run) flow(ctx context.Context, n int, what string) error {
	target := r.src.Acked() + n
	if err := waitFor(ctx, 30*time.Second, func() bool { return r.src.Acked() >= target }); err != nil {
		return fmt.Errorf("demo: the source stalled %s: %w", what, err)
	}
	return nil
}

// drain waits, once the source has stopped, for every terminal to receive
// every acknowledged item, and stops the terminals.
func (r *run) drain(ctx context.Context, rep *Report) {
	var maxSeq uint64
	for _, a := range r.h.Acks() {
		maxSeq = max(maxSeq, a.Seq)
	}
	r.logf("source stopped after %d acknowledgements; waiting for terminals to receive up to seq %d", r.src.Acked(), maxSeq)
	_ = waitFor(ctx, 30*time.Second, func() bool {
		for _, t := range r.terms {
			if t.Last() < maxSeq {
				return false
			}
		}
		return true
	})
	for _, t := range r.terms {
		if err := t.Stop(); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", t.Name, err))
		}
	}
}

// judge fills in the verdict: the store's release records and the checker's
// report on the history.
func (r *run) judge(ctx context.Context, rep *Report, srcErr error) {
	records, err := r.handoverRecords(ctx)
	if err != nil {
		rep.Problems = append(rep.Problems, "read hand-over records: "+err.Error())
	}
	rep.Records = records
	cr := r.h.Check(r.follow)
	rep.Acked, rep.Delivered, rep.Anomalies = cr.Acked, cr.Delivered, cr.Anomalies
	rep.Lost, rep.Duplicated, rep.Reordered, rep.Mismatched, rep.SplitBrain = cr.Lost, cr.Duplicated, cr.Reordered, cr.Mismatched, cr.SplitBrain
	if srcErr != nil {
		rep.Problems = append(rep.Problems, "source: "+srcErr.Error())
	}
	rep.Retries = r.src.Retries()
	rep.Seconds = time.Since(r.start).Seconds()
	rep.OK = cr.OK() && len(rep.Problems) == 0
}

// teardown stops the source, the terminals and the servers; it is safe to
// call on a run that failed half-way.
func (r *run) teardown() {
	if r.src != nil {
		r.src.Stop()
	}
	for _, t := range r.terms {
		t.Stop()
	}
	for _, n := range r.nodes {
		if n.Alive() {
			n.Stop(5 * time.Second)
		}
	}
}
