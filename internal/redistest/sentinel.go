package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SentinelOptions configure a Sentinel group.
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor; default "mymaster".
	MasterName string
	// Password is set on the master and the replica (not on the sentinels).
	Password string
	// KeyspaceEvents sets notify-keyspace-events on the data servers.
	KeyspaceEvents string
	// DownAfter is how long the master must be unreachable before the
	// sentinels start a failover; default 1s.
	DownAfter time.Duration
}

// SentinelGroup is one master, one replica and three sentinels, all real
// processes. After a failover Master and Replica keep naming the processes
// they started as; ask MasterAddr for the current master.
type SentinelGroup struct {
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinels  []*Server
	t          testing.TB
	password   string
}

// StartSentinel starts a master, a replica of it and three sentinels
// monitoring it with quorum 2. It returns once the replica is in sync and
// every sentinel knows the replica and the two other sentinels.
func StartSentinel(t testing.TB, o SentinelOptions) *SentinelGroup {
	t.Helper()
	Binary(t, "redis-server")
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.DownAfter <= 0 {
		o.DownAfter = time.Second
	}
	g := &SentinelGroup{MasterName: o.MasterName, t: t, password: o.Password}
	g.Master = Start(t, Options{Password: o.Password, KeyspaceEvents: o.KeyspaceEvents})
	g.Replica = Start(t, Options{Password: o.Password, KeyspaceEvents: o.KeyspaceEvents, ReplicaOf: g.Master.Addr})
	for range 3 {
		g.Sentinels = append(g.Sentinels, g.startSentinel(o))
	}
	g.waitReady()
	return g
}

func (g *SentinelGroup) startSentinel(o SentinelOptions) *Server {
	t := g.t
	t.Helper()
	dir := t.TempDir()
	s := &Server{Dir: dir, t: t, bin: Binary(t, "redis-server"), log: filepath.Join(dir, "sentinel.log"),
		sentinelConf: filepath.Join(dir, "sentinel.conf")}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var b strings.Builder
		fmt.Fprintf(&b, "port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\nlogfile %s\n", port, dir, s.log)
		fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d 2\n", o.MasterName, g.Master.Port)
		fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", o.MasterName, o.DownAfter.Milliseconds())
		fmt.Fprintf(&b, "sentinel failover-timeout %s 10000\n", o.MasterName)
		fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", o.MasterName)
		if o.Password != "" {
			fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", o.MasterName, o.Password)
		}
		if err := os.WriteFile(s.sentinelConf, []byte(b.String()), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: sentinel: %v", lastErr)
	return nil
}

// waitReady polls until the replica is in sync and every sentinel sees one
// replica and two other sentinels.
func (g *SentinelGroup) waitReady() {
	g.t.Helper()
	waitReady(g.t, "sentinel group", g.notReady)
}

// waitReady polls notReady, which says what is not ready yet ("" once all
// is), for up to 4*ReadyTimeout, and fails t if it never is.
func waitReady(t testing.TB, what string, notReady func() string) {
	t.Helper()
	deadline := time.Now().Add(4 * ReadyTimeout)
	var why string
	for time.Now().Before(deadline) {
		if why = notReady(); why == "" {
			return
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	t.Fatalf("redistest: %s not ready after %v: %s", what, 4*ReadyTimeout, why)
}

func (g *SentinelGroup) notReady() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := g.Replica.Do(ctx, "INFO", "replication")
	if err != nil {
		return "replica: " + err.Error()
	}
	if s, _ := info.(string); !strings.Contains(s, "master_link_status:up") {
		return "replica not in sync"
	}
	for i, s := range g.Sentinels {
		sc := sentinelClient(s)
		m, err := sc.Master(ctx, g.MasterName).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Sprintf("sentinel %d: %v", i, err)
		}
		if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
			return fmt.Sprintf("sentinel %d sees %s replicas and %s other sentinels", i, m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return ""
}

// sentinelClient returns a client on one sentinel; the caller closes it.
func sentinelClient(s *Server) *goredis.SentinelClient {
	return goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, PoolSize: 2, DisableIdentity: true, Protocol: 2})
}

// getMaster asks one sentinel for the master's address.
func (g *SentinelGroup) getMaster(ctx context.Context, s *Server) (string, error) {
	sc := sentinelClient(s)
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, g.MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: bad master address %q", s.Addr, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Addrs are the sentinels' addresses.
func (g *SentinelGroup) Addrs() []string {
	out := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		out[i] = s.Addr
	}
	return out
}

// URL is the group's redis+sentinel store URL for database db.
func (g *SentinelGroup) URL(db int) string {
	auth := ""
	if g.password != "" {
		auth = ":" + g.password + "@"
	}
	return fmt.Sprintf("redis+sentinel://%s%s/%s/%d", auth, strings.Join(g.Addrs(), ","), g.MasterName, db)
}

// MasterAddr asks the sentinels, in turn, for the current master.
func (g *SentinelGroup) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, s := range g.Sentinels {
		addr, err := g.getMaster(ctx, s)
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no sentinel knows master %s: %v", g.MasterName, lastErr)
}

// Server returns the data server (Master or Replica) listening on addr.
func (g *SentinelGroup) Server(addr string) *Server {
	for _, s := range []*Server{g.Master, g.Replica} {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Failover forces a failover (SENTINEL FAILOVER) and returns the new
// master's address once every sentinel reports it and it answers as a master.
func (g *SentinelGroup) Failover() string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*ReadyTimeout)
	defer cancel()
	old, err := g.MasterAddr(ctx)
	if err != nil {
		g.t.Fatalf("redistest: %v", err)
	}
	if err := g.askFailover(ctx, 0); err != nil {
		g.t.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	return g.waitMasterNot(old, true)
}

// askFailover sends SENTINEL FAILOVER to sentinel i. A failover already in
// progress (INPROG) is not an error.
func (g *SentinelGroup) askFailover(ctx context.Context, i int) error {
	sc := sentinelClient(g.Sentinels[i%len(g.Sentinels)])
	defer sc.Close()
	err := sc.Failover(ctx, g.MasterName).Err()
	if err != nil && strings.Contains(err.Error(), "INPROG") {
		return nil
	}
	return err
}

// WaitMasterNot polls until every sentinel names a master other than old and
// that server reports role:master; it returns the new master's address.
func (g *SentinelGroup) WaitMasterNot(old string) string {
	g.t.Helper()
	return g.waitMasterNot(old, false)
}

// waitMasterNot is WaitMasterNot; with ask, it asks the sentinels for the
// failover again, one after another, while the master has not changed for
// ReadyTimeout: on a loaded machine a sentinel may abort a failover (its
// replica did not answer in time) and then waits for another request.
func (g *SentinelGroup) waitMasterNot(old string, ask bool) string {
	g.t.Helper()
	deadline := time.Now().Add(4 * ReadyTimeout)
	nextAsk, asks := time.Now().Add(ReadyTimeout), 0
	var why string
	for time.Now().Before(deadline) {
		if ask && time.Now().After(nextAsk) && strings.HasPrefix(why, "master is still") {
			asks++
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := g.askFailover(ctx, asks); err != nil {
				g.t.Logf("redistest: SENTINEL FAILOVER again (sentinel %d): %v", asks%len(g.Sentinels), err)
			}
			cancel()
			nextAsk = time.Now().Add(ReadyTimeout)
		}
		addr, w := g.agreedMaster()
		why = w
		if w == "" && addr != old {
			if s := g.Server(addr); s != nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				info, err := s.Do(ctx, "INFO", "replication")
				cancel()
				if str, _ := info.(string); err == nil && strings.Contains(str, "role:master") {
					return addr
				}
				why = "new master " + addr + " not yet a master"
			}
		} else if w == "" {
			why = "master is still " + old
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	g.t.Fatalf("redistest: no failover away from %s: %s", old, why)
	return ""
}

func (g *SentinelGroup) agreedMaster() (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var addr string
	for i, s := range g.Sentinels {
		a, err := g.getMaster(ctx, s)
		if err != nil {
			return "", fmt.Sprintf("sentinel %d: %v", i, err)
		}
		if addr != "" && a != addr {
			return "", "sentinels disagree on the master"
		}
		addr = a
	}
	return addr, ""
}
