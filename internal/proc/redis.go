package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton/internal/procsig"
)

// Redis is a redis-server child process with an append-only file fsynced on
// every write (appendfsync always): whatever it acknowledged survives a
// SIGKILL and a restart on the same directory. Chaos runs start one when told
// to run their own Redis.
type Redis struct {
	// Addr is host:port on the loopback interface; restarts keep it.
	Addr string
	// Dir holds the append-only file and the log.
	Dir string
	bin string

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{}
}

// RedisReadyTimeout bounds how long StartRedis and Restart wait for PING
// (a large append-only file takes a while to load).
const RedisReadyTimeout = 30 * time.Second

// StartRedis starts redis-server (found on PATH) in dir on a free loopback
// port and waits until it answers PING.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis): %w", err)
	}
	r := &Redis{Dir: dir, bin: bin}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = r.start(ctx); lastErr == nil {
			return r, nil
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	return nil, lastErr
}

// URL is the store URL of database db.
func (r *Redis) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr, db) }

// Log is the path of the server's log file.
func (r *Redis) Log() string { return filepath.Join(r.Dir, "redis.log") }

func (r *Redis) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command(r.bin,
		"--port", port,
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--dir", r.Dir,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "always",
		// Set here, not only by the nodes with CONFIG SET, so that it
		// survives a restart.
		"--notify-keyspace-events", "Ex",
		"--logfile", r.Log(),
	)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(RedisReadyTimeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ping(r.Addr); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start: %s%s", r.Addr, out.String(), logTail(r.Log()))
		case <-ctx.Done():
			r.Kill()
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}
	r.Kill()
	return fmt.Errorf("redis-server on %s not ready after %v: %v", r.Addr, RedisReadyTimeout, err)
}

// Alive reports whether the server process runs.
func (r *Redis) Alive() bool {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the exit. It is a no-op if the server
// is not running.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(procsig.Cont)
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server and starts it again on the same port and
// directory: it reloads its append-only file.
func (r *Redis) Restart(ctx context.Context) error {
	r.Kill()
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel has
	// not released it yet.
	for range 50 {
		if err = r.start(ctx); err == nil || !strings.Contains(err.Error(), "in use") {
			break
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not synchronisation
	}
	return err
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

// ping sends PING over a fresh connection; a server still loading its
// append-only file answers -LOADING, which is not ready.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("redis not ready: " + strings.TrimSpace(line))
	}
	return nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- " + path + " ---\n" + string(b)
}
