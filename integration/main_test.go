// Package integration tests Baton as users run it: real `baton serve`
// processes on a real store, killed, paused and stopped for real, with
// sources and terminals checked by the independent checker.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/workload"
	"github.com/baton-pub/baton/wire"
)

// httpc bounds every request: a paused node accepts connections but never
// answers.
var httpc = &http.Client{Timeout: 2 * time.Second}

// batonBin is the binary built once for all tests.
var batonBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	batonBin = filepath.Join(dir, "baton")
	build := exec.Command("go", "build", "-o", batonBin, "../cmd/baton")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build baton:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is n real nodes on one store.
type cluster struct {
	t     *testing.T
	dir   string
	store string
	ttl   time.Duration
	nodes []*proc.Node
	h     *checker.History
	// extra are more `baton serve` flags for every node; token, if set,
	// is sent by get (a node started with --jwt-key).
	extra []string
	token string
}

// Engine opens a fresh store URL for a test; the SQLite engine by default.
type engine func(t *testing.T) string

func sqliteEngine(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "baton.db")
}

func newCluster(t *testing.T, eng engine, n int, ttl time.Duration) *cluster {
	t.Helper()
	return newClusterWith(t, eng, n, ttl, "")
}

// newClusterWith is newCluster whose nodes get the extra serve flags, and
// whose own reads (get) send token.
func newClusterWith(t *testing.T, eng engine, n int, ttl time.Duration, token string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), store: eng(t), ttl: ttl, h: checker.NewHistory(), extra: extra, token: token}
	for i := 1; i <= n; i++ {
		c.start("n" + strconv.Itoa(i))
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.Alive() {
				n.Kill()
			}
		}
		if t.Failed() {
			for _, n := range c.nodes {
				if b, err := os.ReadFile(n.Log()); err == nil {
					t.Logf("--- log of %s (last 4 KiB):\n%s", n.Name, tail(b, 4096))
					keepLog(t, n.Name, b)
				}
			}
		}
	})
	return c
}

// keepLog writes a failed test's whole node log into $BATON_KEEP_LOGS, if
// set, for reading after the test's directory is gone.
func keepLog(t *testing.T, node string, b []byte) {
	dir := os.Getenv("BATON_KEEP_LOGS")
	if dir == "" {
		return
	}
	name := strings.NewReplacer("/", "_").Replace(t.Name()) + "-" + node + ".log"
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Logf("keep log: %v", err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (c *cluster) start(name string) *proc.Node {
	c.t.Helper()
	args := append([]string{"--lease-ttl", c.ttl.String(), "--log-level", "debug", "--sse-heartbeat", "200ms"}, c.extra...)
	n, err := proc.Start(context.Background(), batonBin, c.dir, name, c.store, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes = append(c.nodes, n)
	return n
}

func (c *cluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Addr)
	}
	return out
}

func (c *cluster) node(name string) *proc.Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// get decodes a JSON answer from any live node.
func (c *cluster) get(path string, out any) error {
	var last error
	for _, n := range c.nodes {
		if !n.Alive() {
			continue
		}
		if last = c.getFrom(n, path, out); last == nil {
			return nil
		}
	}
	return last
}

// getFrom decodes a JSON answer from node n.
func (c *cluster) getFrom(n *proc.Node, path string, out any) error {
	req, err := http.NewRequest(http.MethodGet, n.URL()+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	err = json.NewDecoder(resp.Body).Decode(out)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return err
}

// watched waits until every other live node watches victim's process
// (GET /v1/status, watching): from then on its crash ends its lease at
// once (reason crashed) rather than at the lapse.
func (c *cluster) watched(victim *proc.Node) {
	c.t.Helper()
	poll.Until(c.t, 30*time.Second, "every node watching "+victim.Name, func() error {
		for _, n := range c.nodes {
			if n == victim || !n.Alive() {
				continue
			}
			var st wire.Status
			if err := c.getFrom(n, "/v1/status", &st); err != nil {
				return err
			}
			if !slices.Contains(st.Watching, victim.Name) {
				return fmt.Errorf("%s watches %v", n.Name, st.Watching)
			}
		}
		return nil
	})
}

// lock reads the topic's lock.
func (c *cluster) lock(topic string) baton.LockState {
	var st baton.LockState
	if err := c.get("/v1/topics/"+topic+"/lock", &st); err != nil {
		c.t.Logf("read lock: %v", err)
	}
	return st
}

// holder waits until the topic has a live holder among the running nodes,
// other than those in not.
func (c *cluster) holder(topic string, not ...*proc.Node) (*proc.Node, baton.Lease) {
	c.t.Helper()
	var n *proc.Node
	var l baton.Lease
	poll.Until(c.t, 30*time.Second, "a live holder of "+topic, func() error {
		st := c.lock(topic)
		if !st.Held {
			return fmt.Errorf("lock %+v not held", st)
		}
		n, l = c.node(st.Lease.Holder), st.Lease
		for _, x := range not {
			if n == x {
				return fmt.Errorf("still held by %s", x.Name)
			}
		}
		if n == nil || !n.Alive() {
			return fmt.Errorf("held by %s, not a live node", st.Lease.Holder)
		}
		return nil
	})
	return n, l
}

// run starts a source and terminals (one per node) on topic.
func (c *cluster) run(topic string, rate int) (*workload.Source, []*workload.Terminal, map[string][]string) {
	c.t.Helper()
	addrs := c.addrs()
	follow := map[string][]string{}
	var terms []*workload.Terminal
	for i := range addrs {
		order := append(append([]string(nil), addrs[i:]...), addrs[:i]...)
		name := "t" + strconv.Itoa(i+1)
		tm, err := workload.StartTerminal(context.Background(), name, topic, order, c.h, workload.TerminalOptions{StreamIdle: time.Second})
		if err != nil {
			c.t.Fatal(err)
		}
		terms = append(terms, tm)
		follow[name] = []string{topic}
	}
	src, err := workload.StartSource(context.Background(), "src", topic, addrs, rate, c.h)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		src.Stop()
		for _, tm := range terms {
			tm.Stop()
		}
	})
	return src, terms, follow
}

// finish stops the source, waits for every terminal to reach the last
// acknowledged seq, stops them and runs the checker.
func (c *cluster) finish(src *workload.Source, terms []*workload.Terminal, follow map[string][]string) checker.Report {
	c.t.Helper()
	if err := src.Stop(); err != nil {
		c.t.Fatalf("source: %v", err)
	}
	var maxSeq uint64
	for _, a := range c.h.Acks() {
		maxSeq = max(maxSeq, a.Seq)
	}
	poll.Until(c.t, 60*time.Second, fmt.Sprintf("terminals to reach seq %d", maxSeq), func() error {
		for _, tm := range terms {
			if tm.Last() < maxSeq {
				return fmt.Errorf("terminal %s at seq %d", tm.Name, tm.Last())
			}
		}
		return nil
	})
	for _, tm := range terms {
		if err := tm.Stop(); err != nil {
			c.t.Errorf("terminal %s: %v", tm.Name, err)
		}
	}
	rep := c.h.Check(follow)
	if !rep.OK() {
		c.t.Errorf("checker: %+v", rep)
	}
	if rep.Acked == 0 {
		c.t.Error("no item was acknowledged")
	}
	return rep
}

// handovers lists the topic's release records.
func (c *cluster) handovers(topic string) []baton.ReleaseRecord {
	var out struct {
		Handovers []baton.ReleaseRecord `json:"handovers"`
	}
	// Every record, not the default 20 newest: a store that lost writes
	// halts the topic and fails a lease a second (docs/ledger.md), which
	// would push the records a test looks for out of the first page.
	if err := c.get("/v1/topics/"+topic+"/handovers?limit=1000", &out); err != nil {
		c.t.Fatalf("handovers: %v", err)
	}
	return out.Handovers
}

// progress waits until the source has n more acknowledgements.
func progress(t *testing.T, src *workload.Source, n int) {
	t.Helper()
	progressWithin(t, src, n, 30*time.Second)
}

// progressWithin waits up to d until the source has n more
// acknowledgements.
func progressWithin(t *testing.T, src *workload.Source, n int, d time.Duration) {
	t.Helper()
	target := src.Acked() + n
	poll.True(t, d, fmt.Sprintf("%d acknowledgements", target), func() bool { return src.Acked() >= target })
}
