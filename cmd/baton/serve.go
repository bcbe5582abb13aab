package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/dial"
	"github.com/baton-pub/baton/forward"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/metrics"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/sqlite"
	"github.com/baton-pub/baton/wire"
	"github.com/spf13/cobra"
)

// serveConfig is `baton serve`'s configuration: flags, each with a BATON_*
// environment variable.
type serveConfig struct {
	Store     string
	Listen    string
	Node      string
	LeaseTTL  time.Duration
	MaxLeases int
	MaxTopics int
	PeerWatch bool
	// ForwardAppends sends an append to the node that holds its topic's
	// lease, where that node is on this machine (forward).
	ForwardAppends bool
	Advertise      string
	MaxBody        int64
	Retain         uint64
	RetainAge      time.Duration
	ReadyFile      string
	LogLevel       string
	Heartbeat      time.Duration
	SSEWriter      string // bhttp.Config.SSEWriter
	// Coalesce is the longest gap between two writes of a busy event
	// stream (bhttp.Config.StreamCoalesce); 0: none.
	Coalesce time.Duration
	// StoreWait is how long to retry opening a store that is unavailable
	// (down, loading, failing over) at start-up; 0 fails at once.
	StoreWait time.Duration
	// DebugListen, if set, serves net/http/pprof there (never on Listen).
	DebugListen string
	// MetricsListen, if set, serves /metrics there too, without a token.
	MetricsListen string
	// The ledger: node key and local copy in DataDir, checkpoint cadence.
	DataDir            string
	Ledger             bool
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
	Security           securityConfig
}

// Validate names the first bad field.
func (c *serveConfig) Validate() error {
	if c.LeaseTTL < 50*time.Millisecond || c.LeaseTTL > 10*time.Minute {
		return baton.Invalidf("--lease-ttl", "%v out of range [50ms, 10m]", c.LeaseTTL)
	}
	if c.MaxTopics < 0 {
		return baton.Invalidf("--max-topics", "%d is negative", c.MaxTopics)
	}
	if err := baton.ValidateRetention("retain", baton.Retention{Age: c.RetainAge}); err != nil {
		return baton.Invalidf("--retain-age", "%v out of range (0, or %v to %v)", c.RetainAge, baton.MinRetainAge, baton.MaxRetainAge)
	}
	if c.Retain > baton.MaxRetainItems {
		return baton.Invalidf("--retain", "%d is more than %d", c.Retain, int64(baton.MaxRetainItems))
	}
	if c.MaxBody < 1024 {
		return baton.Invalidf("--max-body", "%d is below 1024 bytes", c.MaxBody)
	}
	if c.Heartbeat < 100*time.Millisecond || c.Heartbeat > 5*time.Minute {
		return baton.Invalidf("--sse-heartbeat", "%v out of range [100ms, 5m]", c.Heartbeat)
	}
	if c.SSEWriter != bhttp.SSEWriterPool && c.SSEWriter != bhttp.SSEWriterGoroutine {
		return baton.Invalidf("--sse-writer", "%q: want %s or %s", c.SSEWriter, bhttp.SSEWriterPool, bhttp.SSEWriterGoroutine)
	}
	if c.Coalesce < 0 || c.Coalesce > time.Second {
		return baton.Invalidf("--sse-coalesce", "%v out of range [0, 1s]", c.Coalesce)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return baton.Invalidf("--listen", "%q: %v", c.Listen, err)
	}
	if c.Advertise != "" {
		host, port, err := net.SplitHostPort(c.Advertise)
		if err == nil && host == "" {
			err = errors.New("no host")
		}
		if p, perr := strconv.Atoi(port); err == nil && (perr != nil || p < 1 || p > 65535) {
			err = fmt.Errorf("port %q is not in 1-65535", port)
		}
		if err != nil {
			return baton.Invalidf("--advertise", "%q: want HOST:PORT: %v", c.Advertise, err)
		}
	}
	if c.StoreWait < 0 || c.StoreWait > time.Hour {
		return baton.Invalidf("--store-wait", "%v out of range [0, 1h]", c.StoreWait)
	}
	for flag, addr := range map[string]string{"--debug-listen": c.DebugListen, "--metrics-listen": c.MetricsListen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return baton.Invalidf(flag, "%q: %v", addr, err)
		}
	}
	if err := c.Security.validate(); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return baton.Invalidf("--log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Ledger {
		if c.CheckpointEvery == 0 {
			return baton.Invalidf("--checkpoint-every", "must be at least 1")
		}
		if c.CheckpointInterval < time.Millisecond || c.CheckpointInterval > time.Hour {
			return baton.Invalidf("--checkpoint-interval", "%v out of range [1ms, 1h]", c.CheckpointInterval)
		}
	}
	return nil
}

// defaultDataDir is where a node keeps its key and its copy of the ledger
// when --data-dir is not given: beside the SQLite file, else ./baton-data,
// in a directory per node id (several nodes may share one SQLite file).
func defaultDataDir(store, node string) string {
	base := "baton-data"
	if !strings.Contains(store, "://") || strings.HasPrefix(store, "sqlite:") {
		var o sqlite.Options
		if path, err := sqlite.ParseURL(store, &o); err == nil {
			base = filepath.Join(filepath.Dir(path), "baton-data")
		}
	}
	return filepath.Join(base, node)
}

func defaultNode() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "baton"
	}
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b) + "-" + strconv.Itoa(os.Getpid())
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(key string, def int64) int64 {
	if v := os.Getenv(key); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func newServe() *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Baton server",
		Long: `Run a Baton server: ingest from sources, race for each topic's publish
lock, publish as the lock holder, and stream to terminals.

Every flag may also be given as an environment variable BATON_<FLAG>
(e.g. BATON_STORE, BATON_LEASE_TTL).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.Validate(); err != nil {
				return err
			}
			return serve(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Store, "store", envOr("BATON_STORE", dial.DefaultURL), "store URL: sqlite://PATH or redis://HOST:PORT/DB")
	f.StringVar(&c.Listen, "listen", envOr("BATON_LISTEN", "127.0.0.1:8080"), "HTTP listen address (port 0 picks a free one)")
	f.StringVar(&c.Node, "node", envOr("BATON_NODE", defaultNode()), "node id, unique among the servers")
	f.DurationVar(&c.LeaseTTL, "lease-ttl", envDuration("BATON_LEASE_TTL", 2*time.Second), "publish lease time to live")
	f.IntVar(&c.MaxLeases, "max-leases", int(envInt("BATON_MAX_LEASES", 0)), "most topics this node publishes at once (0: no limit)")
	f.IntVar(&c.MaxTopics, "max-topics", int(envInt("BATON_MAX_TOPICS", node.DefaultMaxTopics)), "most topics in the store before a publish to a new one is refused with 403 (0: no limit)")
	f.Int64Var(&c.MaxBody, "max-body", envInt("BATON_MAX_BODY", 1<<20), "largest accepted request body in bytes")
	f.Uint64Var(&c.Retain, "retain", uint64(envInt("BATON_RETAIN", 1_000_000)), "published items kept per topic for resuming terminals (0: all); a topic's own retention overrides it (baton topic retention)")
	f.DurationVar(&c.RetainAge, "retain-age", envDuration("BATON_RETAIN_AGE", 0), "how long published items are kept per topic (0: no age limit); a topic's own retention overrides it")
	f.StringVar(&c.ReadyFile, "ready-file", envOr("BATON_READY_FILE", ""), "write {node, addr} as JSON to this file once serving")
	f.DurationVar(&c.Heartbeat, "sse-heartbeat", envDuration("BATON_SSE_HEARTBEAT", 5*time.Second), "interval of keep-alive comments on idle event streams")
	f.DurationVar(&c.Coalesce, "sse-coalesce", envDuration("BATON_SSE_COALESCE", bhttp.DefaultStreamCoalesce), "longest a busy event stream's write waits to carry more events (40 µs per busy stream on the node, up to this); 0: write every event at once")
	f.StringVar(&c.SSEWriter, "sse-writer", envOr("BATON_SSE_WRITER", bhttp.SSEWriterPool), "how HTTP/1.x event streams are written: pool (no goroutine per idle stream) or goroutine (one per stream; always so on HTTP/2)")
	f.StringVar(&c.LogLevel, "log-level", envOr("BATON_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	f.DurationVar(&c.StoreWait, "store-wait", envDuration("BATON_STORE_WAIT", 0), "at start-up, keep retrying an unavailable store this long (0: fail at once)")
	f.StringVar(&c.MetricsListen, "metrics-listen", envOr("BATON_METRICS_LISTEN", ""), "serve Prometheus metrics (/metrics) on this address too, without a token (the API's /metrics needs the admin right when tokens are on)")
	f.StringVar(&c.DebugListen, "debug-listen", envOr("BATON_DEBUG_LISTEN", ""), "serve Go's profiler (net/http/pprof) on this address; off when empty. Keep it on loopback")
	f.StringVar(&c.DataDir, "data-dir", envOr("BATON_DATA_DIR", ""), "node key and local ledger copy (default: baton-data/<node> beside the SQLite file, else ./baton-data/<node>)")
	f.StringVar(&c.Advertise, "advertise", envOr("BATON_ADVERTISE", ""), "HOST:PORT at which the other nodes reach this one, in the membership and for their peer watch (default: the listen address; set it when --listen binds every interface, as :8080 does)")
	f.BoolVar(&c.ForwardAppends, "forward-appends", envOr("BATON_FORWARD_APPENDS", "true") != "false", "on SQLite, send a client's append to the node on this machine that holds its topic's lease, which publishes it in the append's own transaction; with --peer-watch (docs/design.md)")
	f.BoolVar(&c.PeerWatch, "peer-watch", envOr("BATON_PEER_WATCH", "true") != "false", "hold an idle connection to each peer's address and, when it refuses connections after one was held (the peer's process is gone), end the peer's node lease at once instead of a TTL later (docs/design.md)")
	f.BoolVar(&c.Ledger, "ledger", envOr("BATON_LEDGER", "true") != "false", "sign checkpoints when publishing, and witness every topic's ledger")
	f.Uint64Var(&c.CheckpointEvery, "checkpoint-every", uint64(envInt("BATON_CHECKPOINT_EVERY", ledger.DefaultEvery)), "sign a ledger checkpoint after this many items")
	f.DurationVar(&c.CheckpointInterval, "checkpoint-interval", envDuration("BATON_CHECKPOINT_INTERVAL", ledger.DefaultInterval), "sign a ledger checkpoint at most this long after an item")
	c.Security.flags(f)
	return cmd
}

func serve(ctx context.Context, c serveConfig) error {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("node", c.Node)

	sec, err := c.Security.build(log)
	if err != nil {
		return err
	}
	stopReload := make(chan struct{})
	defer close(stopReload)
	sec.reloadOnHUP(log, stopReload)

	store, err := openServeStore(ctx, c, log)
	if err != nil {
		return fmt.Errorf("open store %s: %w", dial.Redact(c.Store), err)
	}
	defer store.Close()
	var started atomic.Pointer[node.Node] // the node, once made: --metrics-listen may be scraped before
	m := metrics.New(metrics.Config{
		Status: func(ctx context.Context, topics int) (wire.Status, error) {
			if n := started.Load(); n != nil {
				return n.Status(ctx, topics)
			}
			return wire.Status{}, baton.ErrUnavailable
		},
		Publishing: func() []string {
			if n := started.Load(); n != nil {
				return n.Publishing()
			}
			return nil
		},
		TopicStatuses: func(ctx context.Context, topics []string) ([]baton.TopicStatus, error) {
			if n := started.Load(); n != nil {
				return n.TopicStatuses(ctx, topics)
			}
			return nil, baton.ErrUnavailable
		},
	})
	// The store's own, before the metrics wrap it (redis.Store.Notifications,
	// sqlite.Store.ForwardKey).
	notifications, _ := store.(interface{ Notifications() error })
	keyed, _ := store.(interface {
		ForwardKey(ctx context.Context) ([]byte, error)
	})
	store = m.Store(store)

	if c.DebugListen != "" {
		stop, err := serveAside("--debug-listen", "profiler", c.DebugListen, debugMux(), log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.MetricsListen != "" {
		mux := nethttp.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		stop, err := serveAside("--metrics-listen", "metrics", c.MetricsListen, mux, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	addr := ln.Addr().String()
	ln = sec.listener(ln)

	h := hub.New(store, hub.Options{Logger: log})
	if err := h.Start(ctx); err != nil {
		return err
	}
	defer h.Close()

	advertised := addr
	if c.Advertise != "" {
		advertised = c.Advertise
	}
	ncfg := node.Config{Node: c.Node, Addr: advertised, Store: dial.Redact(c.Store), TTL: c.LeaseTTL,
		MaxLeases: c.MaxLeases, MaxTopics: c.MaxTopics, Retain: c.Retain, RetainAge: c.RetainAge, Logger: log, Terminals: h.Terminals,
		TopicDeleted: h.EndTopic, Handoff: h,
		CheckpointEvery: c.CheckpointEvery, CheckpointInterval: c.CheckpointInterval, OnHandover: m.Handover,
		OnFailClosed: m.FailClosed, PeerWatch: c.PeerWatch, PeerTLS: sec.certs != nil}
	if notifications != nil {
		ncfg.Notifications = notifications.Notifications
	}
	var witness *ledger.Witness
	if c.Ledger {
		dir := c.DataDir
		if dir == "" {
			dir = defaultDataDir(c.Store, c.Node)
		}
		key, err := ledger.LoadOrCreateKey(dir, c.Node)
		if err != nil {
			return err
		}
		vkey, _ := key.VerifierKey()
		log.Info("ledger key", "data_dir", dir, "public_key", vkey)
		// Every topic's copy in one file (docs/ledger.md, "The node's
		// copy"), closed after the witness.
		copies, err := sqlite.OpenCopies(filepath.Join(dir, "ledger", "copies.db"), sqlite.CopiesOptions{Logger: log})
		if err != nil {
			return err
		}
		defer copies.Close()
		witness, err = ledger.NewWitness(ledger.WitnessConfig{Store: store, Key: key, Copies: copies, Dir: filepath.Join(dir, "ledger"), Logger: log})
		if err != nil {
			return err
		}
		if err := witness.Start(ctx); err != nil {
			return err
		}
		defer witness.Close()
		ncfg.Key, ncfg.Witness = key, witness
	}
	n, err := node.New(store, ncfg)
	if err != nil {
		return err
	}
	started.Store(n)
	apiCfg := bhttp.Config{Store: store, Hub: h, Status: n.Status, TopicStatuses: n.TopicStatuses, MaxBody: c.MaxBody, Heartbeat: c.Heartbeat, SSEWriter: c.SSEWriter,
		StreamCoalesce:  coalesceConfig(c.Coalesce),
		ShutdownTimeout: 3 * time.Second, Instance: rand.Text(), Logger: log, AdmitTopic: n.AdmitTopic, Metrics: m.Handler(), Observer: m,
		TopicDeleted: n.Forget, Retain: c.Retain, RetainAge: c.RetainAge,
		Drain: func(on bool) wire.Drain {
			if on {
				n.Drain()
			} else {
				n.Undrain()
			}
			return wire.Drain{Node: ncfg.Node, Draining: n.Draining(), Leases: len(n.Active())}
		}}
	if witness != nil {
		apiCfg.Ledger = witness
	}
	switch {
	case keyed == nil:
		// Redis: no forwarding (the nodes may span machines). With the
		// peer watch a node names the topic's lease holder in its
		// answer (Baton-Holder), and a client that follows it sends the
		// topic's appends there, where each is published with its
		// append (redis/fused.go).
		if c.PeerWatch {
			apiCfg.Holder = n.LeaseHolder
		}
	case !c.ForwardAppends:
	case !c.PeerWatch:
		log.Info("appends are not forwarded to the lease holder: --peer-watch is off (docs/operations.md, SQLite specifics)")
	default:
		// docs/design.md, "Appends forwarded to the lease holder".
		if !forward.Loopback(advertised) {
			// Forwards go to loopback addresses only.
			log.Info("the other nodes will not forward appends to this one when it holds their topic's lease: it advertises an address that is not loopback (docs/operations.md, SQLite specifics)", "advertise", advertised)
		}
		key, err := keyed.ForwardKey(ctx)
		if err != nil {
			return err
		}
		fw, err := forward.New(forward.Config{Node: c.Node, Key: key, Local: store.Append, Route: n.LeaseHolder,
			TLS: sec.certs != nil, Observe: m.Forward, Logger: log})
		if err != nil {
			return err
		}
		defer fw.Close()
		apiCfg.Append, apiCfg.ForwardKey, apiCfg.Holder = fw.Append, key, fw.Holder
	}
	c.Security.apply(sec, &apiCfg)
	api, err := bhttp.NewServer(apiCfg)
	if err != nil {
		ln.Close()
		return err
	}
	m.Streams(api.Streams, api.CoalesceGap)
	if witness != nil {
		m.Witness(witness)
	}
	if err := api.Open(ln); err != nil {
		ln.Close()
		return err
	}
	defer api.Close()

	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close()
	if host, _, _ := net.SplitHostPort(advertised); c.PeerWatch && (host == "" || net.ParseIP(host).IsUnspecified()) {
		log.Info("the other nodes cannot watch this one: it advertises no address they can dial; a crash of its process is then noticed at the lease TTL (set --advertise HOST:PORT)", "addr", advertised)
	}
	log.Info("serving", "addr", addr, "advertise", advertised, "tls", sec.certs != nil, "access", accessOf(sec), "store", dial.Redact(c.Store), "lease_ttl", c.LeaseTTL.String())
	if c.ReadyFile != "" {
		if err := writeReady(c.ReadyFile, c.Node, addr); err != nil {
			return err
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down: handing over")
	case err := <-api.Err():
		return err
	}
	// Hand over first: stop publishing and release every lease, so a
	// standby takes over at once. Then end the terminals' streams (they
	// resume elsewhere) and stop.
	n.Close()
	if err := api.Close(); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// openServeStore opens the store, retrying for up to --store-wait while it is
// unavailable (a server still starting, loading or failing over). Any other
// error (a bad URL, a wrong password) fails at once: retrying cannot fix it
// (see dial.Transient).
func openServeStore(ctx context.Context, c serveConfig, log *slog.Logger) (baton.Store, error) {
	deadline := time.Now().Add(c.StoreWait)
	backoff := 100 * time.Millisecond
	for {
		store, err := dial.Open(ctx, c.Store, dial.Options{Logger: log})
		if err == nil || !dial.Transient(c.Store, err) || time.Now().Add(backoff).After(deadline) {
			return store, err
		}
		log.Warn("store unavailable: retrying", "in", backoff.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func writeReady(path, nodeID, addr string) error {
	b, _ := json.Marshal(map[string]string{"node": nodeID, "addr": addr})
	tmp := path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return os.Rename(tmp, path)
}

// coalesceConfig is bhttp.Config.StreamCoalesce for --sse-coalesce: 0
// there turns coalescing off, where 0 in the Config is its default.
func coalesceConfig(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
