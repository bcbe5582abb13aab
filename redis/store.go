package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/proposers"
	"github.com/baton-pub/baton/internal/signal"
)

var _ baton.Store = (*Store)(nil)

// Defaults.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultWaitTimeout = time.Second
	// DefaultReadTimeout bounds one command's round trip when the caller's
	// context has no earlier deadline.
	DefaultReadTimeout = 5 * time.Second
	// maxLimit caps one range read: a huge XRANGE would block Redis.
	maxLimit = 10000
	// trimChunk is how many items one trim script deletes.
	trimChunk = 1000
)

// minVersion is the oldest Redis with every command the scripts use
// (XTRIM MINID, HSET with several fields).
var minVersion = [3]int{6, 2, 0}

// Options tune a Store. The zero value is usable; parameters in the URL
// override the fields they name.
type Options struct {
	Logger *slog.Logger
	// Prefix namespaces every key and channel (default "baton"), so that
	// several Baton clusters, or tests, can share one Redis database.
	Prefix string
	// DialTimeout bounds connecting to a server or sentinel (default 2s).
	// Open fails after about this long if nothing answers.
	DialTimeout time.Duration
	// ReadTimeout bounds a command's round trip (default 5s, or WaitTimeout
	// plus a second if that is longer).
	ReadTimeout time.Duration
	// WaitReplicas, if positive, makes every lock, cursor and append write
	// wait (WAIT) until that many replicas have acknowledged it: an append's
	// receipt, a lease and a cursor then survive a Sentinel failover. If fewer do
	// within WaitTimeout the write returns an error wrapping
	// baton.ErrUnavailable: it was applied on the master but may be lost in
	// a failover, so the caller must treat it as not done (fail closed).
	WaitReplicas int
	// WaitTimeout bounds WAIT (default 1s).
	WaitTimeout time.Duration
	// TLS, if set, is the TLS configuration for rediss:// URLs (cloned;
	// ServerName is filled in from the URL when empty).
	TLS *tls.Config
	// KeepServerConfig stops Open from enabling keyspace notifications of
	// expired keys (CONFIG SET notify-keyspace-events) on the server.
	// Standbys then learn of a lapsed lease from their own timers only.
	KeepServerConfig bool
	// ReplicationCheck is how often the master's replication id is read
	// (see failover.go). Default 1s.
	ReplicationCheck time.Duration
}

// Store is the Redis engine of baton.Store.
type Store struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	rdb  goredis.UniversalClient
	k    keyspace
	// batch sends scripts run at the same moment in one round trip.
	batch *batcher

	sig *signal.Hub
	// origin names this Store in the append messages its scripts publish,
	// so that the listener does not signal its own appends a second time
	// (Append signals them when the script returns).
	origin string
	known  sync.Map // topics this Store has registered in the topics set
	// recent is what the commit messages carried (recent.go), locks
	// the holders the lock messages named (heardlock.go).
	recent recentCommits
	locks  heardLocks
	// fused are the publishers that publish on append (fused.go).
	fused proposers.Registry
	// reloaded is when reloadSlots last asked for the slot map (UnixNano).
	reloaded atomic.Int64
	// countsGen grows with every lock change seen; counts caches the
	// per-node topic counts on Cluster (cluster.go, bucketCounts).
	countsGen atomic.Uint64
	counts    countCache

	closed    atomic.Bool
	notify    notifyState // whether the listener is subscribed (notifyhealth.go)
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open connects to the Redis named by rawURL (see Config for the forms),
// checks that it is usable, loads the scripts and subscribes to the change
// channels. A bad URL, a wrong password, an unreachable server or one that
// cannot run Lua scripts give one error naming the problem, after at most
// about the dial timeout.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if cfg.Prefix != "" {
		opts.Prefix = cfg.Prefix
	}
	if cfg.DialTimeout > 0 {
		opts.DialTimeout = cfg.DialTimeout
	}
	if cfg.WaitReplicas > 0 {
		opts.WaitReplicas = cfg.WaitReplicas
	}
	if cfg.WaitTimeout > 0 {
		opts.WaitTimeout = cfg.WaitTimeout
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if err := validPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = DefaultWaitTimeout
	}
	if opts.WaitReplicas < 0 {
		return nil, baton.Invalidf("wait_replicas", "must not be negative")
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = max(DefaultReadTimeout, opts.WaitTimeout+time.Second)
	}
	routeDriverLogs.Do(func() { goredis.SetLogger(driverLogger{}) })
	s := &Store{cfg: cfg, opts: opts, log: opts.Logger.With("store", cfg.Redacted()), k: keyspace{p: opts.Prefix, db: cfg.DB}, sig: signal.NewHub(),
		origin: rand.Text()[:12]}
	if cfg.Cluster {
		s.k.buckets = bucketTags(cmp.Or(cfg.Buckets, DefaultBuckets))
	}
	if s.rdb, err = newClient(cfg, opts); err != nil {
		return nil, err
	}
	if batched(cfg, opts) {
		s.batch = newBatcher(s.rdb)
	}
	if err := s.check(ctx); err != nil {
		s.batch.stop()
		_ = s.rdb.Close()
		return nil, err
	}
	sub, err := s.subscribe(ctx)
	if err != nil {
		s.batch.stop()
		_ = s.rdb.Close()
		return nil, s.openErr("subscribe to change channels", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.opts.ReplicationCheck <= 0 {
		s.opts.ReplicationCheck = time.Second
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.listen(wctx, sub) }()
	go func() { defer s.wg.Done(); s.watchReplication(wctx) }()
	return s, nil
}

// routeDriverLogs makes go-redis log through slog at debug level instead of
// printing to stderr: its messages (each failed dial, each reconnect) repeat
// what Baton already reports once, as an error or a warning of its own.
// go-redis has one logger per process, so this is done once.
var routeDriverLogs sync.Once

type driverLogger struct{}

func (driverLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// newClient builds the go-redis client. Retries are off: a command either
// reaches the server once or fails with ErrUnavailable, and the caller (the
// elector, the publisher, a source) retries with knowledge of what it was
// doing. A silent client retry of a script whose reply was lost could, for
// example, acquire a lock and then report it held.
func newClient(cfg Config, opts Options) (goredis.UniversalClient, error) {
	var tlsCfg *tls.Config
	if cfg.TLS {
		if opts.TLS != nil {
			tlsCfg = opts.TLS.Clone()
		} else {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, baton.Invalidf("store", "redis URL: ca_file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, baton.Invalidf("store", "redis URL: ca_file %s holds no PEM certificate", cfg.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
		if cfg.SkipVerify {
			tlsCfg.InsecureSkipVerify = true
		}
		if tlsCfg.ServerName == "" && !cfg.Sentinel && !cfg.Cluster {
			host, _, _ := net.SplitHostPort(cfg.Addrs[0])
			tlsCfg.ServerName = host
		}
	}
	// The dial budget is one attempt per address: Open must fail fast on an
	// unreachable server, and a later outage surfaces as ErrUnavailable at
	// once rather than after a hidden backoff. MaxRedirects -1 (Cluster): no
	// second attempt, not even after MOVED or ASK (it is ErrUnavailable, and
	// the store re-reads the slot map, mapErr): the Cluster client would
	// also retry a command whose reply was lost.
	uo := &goredis.UniversalOptions{
		Addrs:            cfg.Addrs,
		MasterName:       cfg.MasterName,
		SentinelUsername: cfg.SentinelUsername,
		SentinelPassword: cfg.SentinelPassword,
		Username:         cfg.Username,
		Password:         cfg.Password,
		DB:               cfg.DB,
		TLSConfig:        tlsCfg,
		MaxRetries:       -1,
		MaxRedirects:     -1,
		DialTimeout:      opts.DialTimeout,
		DialerRetries:    1,
		ReadTimeout:      opts.ReadTimeout,
		WriteTimeout:     opts.ReadTimeout,
		// Cancelling a context must not wait for the read timeout.
		ContextTimeoutEnabled:    true,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch {
	case cfg.Cluster:
		co := uo.Cluster()
		// The slot map is re-read at most this long after a failover went
		// unnoticed (mapErr re-reads it at once on an error that may mean
		// one).
		co.ClusterStateReloadInterval = time.Second
		return goredis.NewClusterClient(co), nil
	case cfg.Sentinel:
		return goredis.NewFailoverClient(uo.Failover()), nil
	}
	return goredis.NewClient(uo.Simple()), nil
}

// check runs Open's checks in order, each with its own clear error: reach
// and authenticate, version, Lua, scripts, keyspace notifications.
func (s *Store) check(ctx context.Context) error {
	// Connecting, authenticating and the first PING must all fit in twice
	// the dial timeout: a server that accepts connections but never answers
	// (paused, overloaded) fails Open as quickly as an absent one.
	pctx, cancel := context.WithTimeout(ctx, 2*s.opts.DialTimeout)
	err := s.rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return s.openErr("", err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout+s.opts.ReadTimeout)
	defer cancel()
	info, err := s.rdb.Info(cctx, "server").Result()
	if err != nil {
		return s.openErr("read server info", err)
	}
	version := infoField(info, "redis_version")
	if !versionAtLeast(version, minVersion) {
		return fmt.Errorf("open redis store %s: Redis %d.%d or later is required, the server runs %q: %w",
			s.cfg.Redacted(), minVersion[0], minVersion[1], version, baton.ErrUnavailable)
	}
	if v, err := s.rdb.Eval(cctx, "return 1", nil).Int(); err != nil || v != 1 {
		if err == nil {
			err = fmt.Errorf("EVAL 'return 1' returned %d", v)
		}
		var rerr goredis.Error
		if !errors.As(err, &rerr) {
			// The connection failed, not the command: say so, rather than
			// blame a server that may run Lua perfectly well.
			return s.openErr("run EVAL", err)
		}
		return s.openErr("the server cannot run Lua scripts (Baton needs EVAL and EVALSHA)", err)
	}
	for _, sc := range allScripts {
		if err := sc.Load(cctx, s.rdb).Err(); err != nil {
			return s.openErr("load script "+sc.name, err)
		}
	}
	if s.k.cluster() {
		if err := s.checkBuckets(cctx); err != nil {
			return err
		}
	}
	s.log.Info("redis store open", "version", version, "prefix", s.k.p, "wait_replicas", s.opts.WaitReplicas,
		"buckets", len(s.k.buckets))
	// On Redis Cluster keyspace events are per server: the elector's own
	// timers stand in for them (doc.go, "Cluster").
	if !s.opts.KeepServerConfig && !s.k.cluster() {
		s.enableKeyspaceEvents(cctx)
	}
	return nil
}

// enableKeyspaceEvents adds "Ex" (keyevent notifications of expired keys) to
// the server's notify-keyspace-events, if the server allows CONFIG SET. It
// never removes a flag. Without it standbys rely on their timers.
func (s *Store) enableKeyspaceEvents(ctx context.Context) {
	cur, err := s.rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		s.log.Info("keyspace notifications unknown: standbys rely on timers", "err", err)
		return
	}
	flags := cur["notify-keyspace-events"]
	hasE := strings.Contains(flags, "E")
	hasX := strings.Contains(flags, "x") || strings.Contains(flags, "A")
	if hasE && hasX {
		return
	}
	want := flags
	if !hasE {
		want += "E"
	}
	if !hasX {
		want += "x"
	}
	if err := s.rdb.ConfigSet(ctx, "notify-keyspace-events", want).Err(); err != nil {
		s.log.Info("cannot enable keyspace notifications: standbys rely on timers", "err", err)
		return
	}
	s.log.Info("enabled keyspace notifications of expired keys", "notify-keyspace-events", want)
}

// openErr names what failed at Open in words an operator can act on.
func (s *Store) openErr(step string, err error) error {
	msg := err.Error()
	var what string
	switch {
	case goredis.HasErrorPrefix(err, "WRONGPASS"), goredis.HasErrorPrefix(err, "NOAUTH"),
		strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"),
		strings.Contains(msg, "AUTH <password> called without any password"):
		what = "authentication failed: check the user and password in the URL"
	case goredis.HasErrorPrefix(err, "NOPERM"):
		what = "permission denied for the URL's user (Baton needs keys, channels, EVAL/EVALSHA, SCRIPT LOAD, stream, hash, list and pub/sub commands)"
	case strings.Contains(msg, "DB index is out of range"):
		what = fmt.Sprintf("database %d does not exist on the server", s.cfg.DB)
	case strings.Contains(msg, "all sentinels") || strings.Contains(msg, "No such master"):
		what = fmt.Sprintf("no sentinel answered for master %q", s.cfg.MasterName)
	case isCertErr(err):
		what = "TLS: the server's certificate is not trusted (set ca_file=PATH in the URL, or skip_verify=true for tests only)"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		what = "no answer in time: is the server up and the address right?"
	case isConnErr(err):
		what = "cannot connect: is the server up and the address right?"
	}
	transient := isTimeout(err) || isConnErr(err) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(msg, "all sentinels") || strings.Contains(msg, "No such master") ||
		goredis.HasErrorPrefix(err, "LOADING") || goredis.HasErrorPrefix(err, "MASTERDOWN") ||
		goredis.HasErrorPrefix(err, "TRYAGAIN")
	if transient {
		err = transientError{err}
	}
	if step != "" && what != "" {
		what = step + ": " + what
	} else if step != "" {
		what = step
	}
	if what == "" {
		return fmt.Errorf("open redis store %s: %w: %w", s.cfg.Redacted(), baton.ErrUnavailable, err)
	}
	return fmt.Errorf("open redis store %s: %s: %w: %w", s.cfg.Redacted(), what, baton.ErrUnavailable, err)
}

// transientError marks an Open error that may go away by itself: the
// server is down, starting, loading its data or failing over.
type transientError struct{ error }

func (e transientError) Unwrap() error { return e.error }

// Transient reports whether an error from Open may go away by itself (no
// server yet, no answer, loading, a failover in progress), as opposed to one
// only a change of configuration fixes (a wrong password, a missing
// database, a server without Lua).
func Transient(err error) bool {
	var te transientError
	return errors.As(err, &te)
}

// Config is the parsed store URL the Store was opened with.
func (s *Store) Config() Config { return s.cfg }

// Prefix is the key namespace.
func (s *Store) Prefix() string { return s.k.p }

// Client is the underlying go-redis client, for diagnostics and tests: a
// *goredis.ClusterClient on Redis Cluster, a *goredis.Client otherwise.
func (s *Store) Client() goredis.UniversalClient { return s.rdb }

// Ping implements baton.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("ping redis store: %w", baton.ErrClosed)
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis store: %w", s.mapErr(err))
	}
	return nil
}

// Close stops the listener and closes the connections. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		// Wake every waiter: it re-reads and learns that the store is closed.
		s.sig.NotifyAll()
		s.sig.Close()
		s.batch.stop()
		s.closeErr = s.rdb.Close()
		s.batch.wait()
	})
	return s.closeErr
}

// Subscribe implements baton.Notifier. The change channels were subscribed
// (and confirmed) at Open, so a change made after Subscribe returns is
// signalled.
func (s *Store) Subscribe(topic string, signals baton.Signal) baton.Subscription {
	return s.sig.Subscribe(topic, signals)
}

// SubscribeFunc implements baton.Notifier.
func (s *Store) SubscribeFunc(topic string, signals baton.Signal, fn func(baton.Signal)) baton.Subscription {
	return s.sig.SubscribeFunc(topic, signals, fn)
}

// errClosed is returned by every method after Close.
func (s *Store) errClosed() error {
	if s.closed.Load() {
		return baton.ErrClosed
	}
	return nil
}

// mapErr maps client and server errors onto baton's sentinels: anything
// that says the store cannot be reached or cannot take writes right now is
// ErrUnavailable (the original error stays wrapped too).
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, goredis.ErrClosed) || s.closed.Load() {
		return fmt.Errorf("%w: %w", baton.ErrClosed, err)
	}
	if unavailable(err) {
		s.reloadSlots()
		return fmt.Errorf("%w: %w", baton.ErrUnavailable, err)
	}
	return err
}

// reloadSlots re-reads the Cluster's slot map, in the background and at
// most every 100ms, after an error that may mean a master failed or moved:
// the client would otherwise keep sending to the old master until its next
// periodic reload.
func (s *Store) reloadSlots() {
	cc, ok := s.rdb.(*goredis.ClusterClient)
	if !ok || s.closed.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := s.reloaded.Load()
	if now-last < int64(100*time.Millisecond) || !s.reloaded.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.DialTimeout+s.opts.ReadTimeout)
		defer cancel()
		cc.ReloadState(ctx)
	}()
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, goredis.ErrPoolTimeout) || isConnErr(err) || isTimeout(err) {
		return true
	}
	for _, p := range []string{"READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK",
		"BUSY", "NOREPLICAS", "OOM", "MISCONF", "NOAUTH", "WRONGPASS"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return strings.Contains(err.Error(), "all sentinels")
}

func isConnErr(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "failed to dial")
}

func isCertErr(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &tv)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// infoField reads one "name:value" line of an INFO reply.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func versionAtLeast(v string, min [3]int) bool {
	parts := strings.SplitN(v, ".", 3)
	var got [3]int
	for i := range parts {
		n, err := strconv.Atoi(strings.TrimFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' }))
		if err != nil {
			return false
		}
		got[i] = n
	}
	for i := range got {
		if got[i] != min[i] {
			return got[i] > min[i]
		}
	}
	return true
}
