package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/testcerts"
	"github.com/baton-pub/baton/wire"
)

// env is where a bench runs: a scratch directory and the store engine,
// with the redis-server the bench started, if any.
type env struct {
	cfg    Config
	dir    string
	engine string // "sqlite" or "redis"
	// sync is SQLite's synchronous level for the nodes and the ceiling:
	// "full" (serve's default) or "normal" (--store sqlite?sync=normal).
	sync  string
	base  string // the Redis URL (given or started), for engine "redis"
	redis *exec.Cmd
	nonce string
	logf  func(string, ...any)
	// tls is what clients trust when the nodes serve TLS (Config.TLS),
	// tlsArgs the nodes' --tls-cert and --tls-key; nil when plain HTTP.
	tls     *tls.Config
	tlsArgs []string
	// peers are the peers built in this run (peers.go).
	peers map[string]*peerBuild
	// keep keeps dir past the run although Config.Keep is off: a figure
	// came out far off (keepFor), and the nodes' logs are what explains it.
	keep bool
}

// keepFor keeps the scratch directory, with the nodes' logs, past the run,
// as --keep does, because of why: a figure far off what it should be (a
// 22 s mass hand-over was once seen in a run that kept nothing,
// docs/benchmarks.md "Seen once, not explained").
func (e *env) keepFor(why string) {
	if !e.keep && !e.cfg.Keep {
		e.logf("keeping the scratch directory %s (the nodes' logs): %s", e.dir, why)
	}
	e.keep = true
}

func newEnv(ctx context.Context, cfg Config, logf func(string, ...any)) (*env, error) {
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, dir: dir, logf: logf, nonce: strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 36)}
	switch s := cfg.Store; {
	case s == "" || s == "sqlite":
		e.engine, e.sync = "sqlite", "full"
	case strings.HasPrefix(s, "sqlite?"):
		e.engine = "sqlite"
		q, err := url.ParseQuery(strings.TrimPrefix(s, "sqlite?"))
		if err != nil || len(q) != 1 || len(q["sync"]) != 1 || (q.Get("sync") != "full" && q.Get("sync") != "normal") {
			e.close()
			return nil, fmt.Errorf("bench: --store %q: the one option of sqlite is sync=full or sync=normal", s)
		}
		e.sync = q.Get("sync")
	case strings.HasPrefix(s, "sqlite://"):
		return nil, fmt.Errorf("bench: --store sqlite takes no path: every scenario gets a fresh file in a temporary directory")
	case s == "redis":
		e.engine = "redis"
		if err := e.startRedis(ctx); err != nil {
			e.close()
			return nil, err
		}
	case strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://") || strings.HasPrefix(s, "redis+sentinel://"):
		e.engine, e.base = "redis", s
	default:
		return nil, fmt.Errorf("bench: --store %q: want sqlite, redis or a redis:// URL", s)
	}
	if cfg.TLS {
		if err := e.makeCerts(); err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}

// makeCerts makes a CA and the nodes' certificate in the scratch
// directory; the bench's clients trust that CA.
func (e *env) makeCerts() error {
	ca, err := testcerts.NewCA(e.dir, "ca")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	p, err := ca.Issue("node", testcerts.Server)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	e.tlsArgs = []string{"--tls-cert", p.CertFile, "--tls-key", p.KeyFile}
	e.tls, err = client.LoadTLS(client.TLSFiles{CAFile: ca.CertFile})
	return err
}

// startRedis runs a redis-server from PATH on a free loopback port, with
// append-only persistence and expiry notifications, until close.
func (e *env) startRedis(ctx context.Context) error {
	cmd, addr, err := startRedisServer(ctx, filepath.Join(e.dir, "redis"), e.logf)
	if err != nil {
		return err
	}
	e.redis = cmd
	e.base = "redis://" + addr + "/0"
	return nil
}

// StartRedis runs a redis-server as the bench runs its own (append-only
// persistence, fsync every second, the Debian default) in dir, for a
// peer's driver (bench/peers); stop ends it.
func StartRedis(ctx context.Context, dir string, logf func(string, ...any)) (addr string, stop func(), err error) {
	cmd, addr, err := startRedisServer(ctx, dir, logf)
	if err != nil {
		return "", nil, err
	}
	return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}

// startRedisServer runs redis-server from PATH on a free loopback port with
// its files in rdir and waits until it answers.
func startRedisServer(ctx context.Context, rdir string, logf func(string, ...any)) (*exec.Cmd, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("bench: --store redis needs redis-server on PATH (Debian/Ubuntu: apt-get install redis-server), or give a redis:// URL")
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(rdir, 0o750); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--daemonize", "no", "--dir", rdir, "--save", "", "--appendonly", "yes",
		"--notify-keyspace-events", "Ex", "--logfile", filepath.Join(rdir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("bench: start redis-server: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, "", fmt.Errorf("bench: redis-server on port %d not answering; see %s", port, filepath.Join(rdir, "redis.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	logf("started redis-server %s on %s", redisVersion(ctx, c), addr)
	return cmd, addr, nil
}

func redisVersion(ctx context.Context, c *goredis.Client) string {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (e *env) close() {
	if e.redis != nil && e.redis.Process != nil {
		_ = e.redis.Process.Kill()
		_ = e.redis.Wait()
	}
	if !e.cfg.Keep && !e.keep {
		os.RemoveAll(e.dir)
	}
}

// storeURL is a fresh store for one scenario: its own SQLite file, or its
// own key prefix on the Redis server.
func (e *env) storeURL(name string) string {
	if e.engine == "sqlite" {
		return "sqlite://" + filepath.Join(e.dir, name+".db") + "?sync=" + e.sync
	}
	sep := "?"
	if strings.Contains(e.base, "?") {
		sep = "&"
	}
	return e.base + sep + "prefix=bench-" + e.nonce + "-" + name
}

// redisAddr is host:port of the Redis server (engine "redis", plain URL).
func (e *env) redisOptions() (*goredis.Options, error) {
	u, err := url.Parse(e.base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "redis" {
		return nil, fmt.Errorf("the XADD ceiling needs a plain redis:// URL, not %s", u.Scheme)
	}
	return goredis.ParseURL(e.base)
}

// cluster is n `baton serve` processes on one store.
type cluster struct {
	name  string
	store string
	dir   string
	nodes []*proc.Node
	tls   *tls.Config // what clients trust, nil for plain HTTP
	exe   string
	args  []string // every node's serve flags beyond store, name and listen
}

// startCluster starts n nodes named NAME-1.. on a fresh store.
func (e *env) startCluster(ctx context.Context, name string, n int, ttl time.Duration, extra ...string) (*cluster, error) {
	args := append(append([]string{"--lease-ttl", ttl.String(), "--log-level", "warn"}, e.tlsArgs...), extra...)
	if e.cfg.NoPeerWatch {
		args = append(args, "--peer-watch=false")
	}
	c := &cluster{name: name, store: e.storeURL(name), dir: filepath.Join(e.dir, name), tls: e.tls, exe: e.cfg.Exe, args: args}
	if err := os.MkdirAll(c.dir, 0o750); err != nil {
		return nil, err
	}
	for i := range n {
		nargs := args
		if port := os.Getenv("BATON_BENCH_PPROF_PORT"); port != "" {
			// Profiling a bench run: node i serves pprof on PORT+i.
			base, _ := strconv.Atoi(port)
			nargs = append(slices.Clip(args), "--debug-listen", "127.0.0.1:"+strconv.Itoa(base+i))
		}
		p, err := proc.Start(ctx, e.cfg.Exe, c.dir, "n"+strconv.Itoa(i+1), c.store, nargs...)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("bench: start %s node %d: %w", name, i+1, err)
		}
		c.nodes = append(c.nodes, p)
	}
	return c, nil
}

// join starts one more node, named after the count of nodes so far, with
// the same flags as the others.
func (c *cluster) join(ctx context.Context) (*proc.Node, error) {
	name := "n" + strconv.Itoa(len(c.nodes)+1)
	args := c.args
	if port := os.Getenv("BATON_BENCH_PPROF_PORT"); port != "" {
		base, _ := strconv.Atoi(port) // as startCluster's: node i on PORT+i
		args = append(slices.Clip(args), "--debug-listen", "127.0.0.1:"+strconv.Itoa(base+len(c.nodes)))
	}
	p, err := proc.Start(ctx, c.exe, c.dir, name, c.store, args...)
	if err != nil {
		return nil, fmt.Errorf("bench: start %s node %s: %w", c.name, name, err)
	}
	c.nodes = append(c.nodes, p)
	return p, nil
}

// bases are the nodes' base URLs (https:// when they serve TLS).
func (c *cluster) bases() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.URL()
	}
	return out
}

// close stops every node (SIGTERM, then SIGKILL).
func (c *cluster) close() {
	for _, n := range c.nodes {
		if n.Alive() {
			n.Stop(5 * time.Second)
		}
	}
}

// handovers lists a topic's release records from the first node that answers.
func (c *cluster) handovers(ctx context.Context, topic string) ([]wire.Handover, error) {
	var addrs []string
	for _, n := range c.nodes {
		if n.Alive() {
			addrs = append(addrs, n.URL())
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no node alive")
	}
	cl, err := client.New(addrs, client.Options{HTTP: &http.Client{Timeout: 3 * time.Second}, TLS: c.tls})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cl.Handovers(ctx, topic)
}

// spurious reads topic's release records, none of which a fault explains
// (no fault was injected), and logs each with its reason: a spurious
// hand-over in a report comes with the why in the progress.
func (e *env) spurious(ctx context.Context, c *cluster, topic string) (int, error) {
	hs, err := c.handovers(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("read hand-overs: %w", err)
	}
	for _, h := range hs {
		e.logf("SPURIOUS hand-over of %s: %s released epoch %d at %s, reason %s (last seq %d)",
			topic, h.Holder, h.Epoch, h.At.Format("15:04:05.000"), h.Reason, h.LastSeq)
	}
	return len(hs), nil
}

// pidOf finds the process of a node by its ready file, which is on its
// command line and unique to it.
func pidOf(n *proc.Node, dir string) (int, error) {
	want := []byte(filepath.Join(dir, n.Name+".ready"))
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(b, []byte{0}) {
			if bytes.Equal(arg, want) {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process of node %s found in /proc", n.Name)
}

// rssKB reads VmRSS of a process from /proc/PID/status, in KiB.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(l, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// waitFor polls cond every 5ms until it holds, d passes or ctx ends.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
