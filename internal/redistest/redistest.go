// Package redistest starts real redis-server processes for tests: a single
// server, or a Sentinel group (one master, one replica, three sentinels).
// Every process runs on a free loopback port in a t.TempDir(), is ready
// (answers PING) when the helper returns, and is killed and reaped by a
// t.Cleanup.
//
// Without redis-server on PATH the calling test is skipped with a message
// saying how to install it, unless the environment variable CI is set: in CI
// a missing Redis is a failure.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton/internal/procsig"
)

// ReadyTimeout bounds how long a helper waits for a process to be ready.
const ReadyTimeout = 15 * time.Second

// Binary returns the path of name (redis-server, redis-sentinel). If it is
// not on PATH it skips t, or fails it when the environment variable CI is set.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on PATH: the Redis tests need a real Redis "+
		"(Debian/Ubuntu: apt-get install redis-server redis-sentinel; macOS: brew install redis)", name)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI is set, so a missing Redis is a failure", msg)
	}
	t.Skip(msg)
	return ""
}

// Options configure a Server. The zero value is a standalone server with
// persistence by append-only file and no password.
type Options struct {
	// Password sets requirepass (and masterauth, for a replica).
	Password string
	// KeyspaceEvents sets notify-keyspace-events, e.g. "Ex".
	KeyspaceEvents string
	// ReplicaOf makes the server a replica of the master at this address.
	ReplicaOf string
	// TLS also serves TLS on TLSAddr, with a certificate from a test CA
	// (Server.TLS.CAFile); clients are not asked for certificates.
	TLS bool
	// Args are extra command-line arguments, e.g. "--maxmemory", "10mb".
	Args []string
}

// Server is one redis-server process started by a test.
type Server struct {
	// Addr is host:port on the loopback interface.
	Addr string
	Port int
	// Dir is the server's working directory (AOF, logs).
	Dir string
	// Password is the requirepass, if any.
	Password string
	// TLSAddr is the TLS listener (Options.TLS), and TLS its files.
	TLSAddr string
	TLS     TLSFiles

	t    testing.TB
	bin  string
	args []string
	log  string
	// sentinelConf is set for a sentinel: it runs from its config file.
	sentinelConf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// Start starts a redis-server on a free port and waits until it answers
// PING. It is killed when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t, "redis-server")
	dir := t.TempDir()
	var args []string
	args = append(args,
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--dir", dir,
		"--save", "",
		"--appendonly", "yes",
		// Every acknowledged write is in the file before the reply, so a
		// killed and restarted server has all of them (with everysec a
		// postponed write could be lost to SIGKILL under load).
		"--appendfsync", "always",
		"--logfile", filepath.Join(dir, "redis.log"),
		// A new replica syncs at once instead of waiting for others to join.
		"--repl-diskless-sync-delay", "0",
	)
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password, "--masterauth", o.Password)
	}
	if o.KeyspaceEvents != "" {
		args = append(args, "--notify-keyspace-events", o.KeyspaceEvents)
	}
	if o.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(o.ReplicaOf)
		if err != nil {
			t.Fatalf("redistest: ReplicaOf %q: %v", o.ReplicaOf, err)
		}
		args = append(args, "--replicaof", host, port)
	}
	s := &Server{Dir: dir, Password: o.Password, t: t, bin: bin, log: filepath.Join(dir, "redis.log")}
	if o.TLS {
		files, err := writeTLSFiles(dir)
		if err != nil {
			t.Fatalf("redistest: make TLS certificates: %v", err)
		}
		port, err := FreePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.TLS, s.TLSAddr = files, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args = append(args, "--tls-port", strconv.Itoa(port), "--tls-cert-file", files.CertFile,
			"--tls-key-file", files.KeyFile, "--tls-ca-cert-file", files.CAFile, "--tls-auth-clients", "no")
	}
	s.args = append(args, o.Args...)
	s.startOnFreePort()
	t.Cleanup(s.Kill)
	return s
}

// startOnFreePort picks a free port and starts the server on it, trying
// again with another port if one was taken between the pick and the bind.
func (s *Server) startOnFreePort() {
	s.t.Helper()
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			s.t.Fatalf("redistest: %v", err)
		}
		s.Port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			return
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	s.t.Fatalf("redistest: %v", lastErr)
}

// start runs the process on s.Port and waits until it is ready.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, append([]string{"--port", strconv.Itoa(s.Port)}, s.args...)...)
	if s.sentinelConf != "" {
		cmd = exec.Command(s.bin, s.sentinelConf, "--sentinel")
	}
	return s.run(cmd, func(ctx context.Context) error {
		return ping(ctx, s.Addr, s.Password)
	})
}

// run starts cmd and polls ready until it succeeds, the process exits, or
// ReadyTimeout passes.
func (s *Server) run(cmd *exec.Cmd, ready func(context.Context) error) error {
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(ReadyTimeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis on port %d exited at start: %s%s", s.Port, stderr.String(), s.logTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.Kill()
	return fmt.Errorf("redis on port %d not ready after %v: %v%s", s.Port, ReadyTimeout, err, s.logTail())
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- " + s.log + " ---\n" + string(b)
}

// URL is the server's store URL for database db.
func (s *Server) URL(db int) string {
	auth := ""
	if s.Password != "" {
		auth = ":" + s.Password + "@"
	}
	return fmt.Sprintf("redis://%s%s/%d", auth, s.Addr, db)
}

// TLSURL is the server's rediss:// store URL for database db, trusting the
// test CA.
func (s *Server) TLSURL(db int) string {
	auth := ""
	if s.Password != "" {
		auth = ":" + s.Password + "@"
	}
	return fmt.Sprintf("rediss://%s%s/%d?ca_file=%s", auth, s.TLSAddr, db, url.QueryEscape(s.TLS.CAFile))
}

// Kill sends SIGKILL and waits for the process to exit. It is idempotent and
// a no-op if the process is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(procsig.Cont) // a paused process must be able to die
	_ = cmd.Process.Kill()
	<-done
}

// Pause stops the process (SIGSTOP): it keeps its sockets but answers nothing.
func (s *Server) Pause() { s.signal(procsig.Stop) }

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() { s.signal(procsig.Cont) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		if err := s.cmd.Process.Signal(sig); err != nil {
			s.t.Errorf("redistest: signal %v to port %d: %v", sig, s.Port, err)
		}
	}
}

// Restart kills the process and starts it again on the same port and
// directory: it reloads its append-only file.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel has
	// not released it yet.
	for range 50 {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "in use") {
			break
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not synchronisation
	}
	if err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Client returns a go-redis client on the server, closed when the test ends.
func (s *Server) Client() *goredis.Client {
	c := newClient(s.Addr, s.Password)
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Do runs one command on the server on a short-lived connection.
func (s *Server) Do(ctx context.Context, args ...any) (any, error) {
	c := newClient(s.Addr, s.Password)
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

func newClient(addr, password string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: addr, Password: password,
		MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second,
		PoolSize: 2, DisableIdentity: true, Protocol: 2,
	})
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping returns nil once the server at addr answers PING. A server that
// answers LOADING is not ready yet.
func ping(ctx context.Context, addr, password string) error {
	// Dial first: until the port is open, go-redis would log every failed
	// dial on stderr.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	_ = conn.Close()
	c := newClient(addr, password)
	defer c.Close()
	err = c.Ping(ctx).Err()
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ping %s: timed out", addr)
	}
	return err
}
