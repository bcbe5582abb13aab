// Package proc runs `baton serve` as real child processes and injects
// faults into them (SIGKILL, SIGSTOP/SIGCONT, SIGTERM), or asks them to
// reload (SIGHUP). The demo, bench, chaos and the integration tests use it.
package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/baton-pub/baton/internal/procsig"
)

// Node is a `baton serve` child process. Its methods are safe for
// concurrent use, but Restart must not race with another Restart.
type Node struct {
	Name string
	// Addr is the listen address; it does not change across restarts.
	Addr  string
	args  []string
	exe   string
	dir   string
	ready string

	mu   sync.Mutex // guards cmd, done and err
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts `exe serve` with the given store and waits until it
// serves. Its log goes to dir/NAME.log. exe "" means this executable.
func Start(ctx context.Context, exe, dir, name, store string, extra ...string) (*Node, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
	}
	p := &Node{Name: name, exe: exe, dir: dir, ready: filepath.Join(dir, name+".ready")}
	p.args = []string{"serve", "--store", store, "--listen", "127.0.0.1:0", "--node", name, "--ready-file", p.ready}
	if !slices.Contains(extra, "--data-dir") {
		// Keys and the ledger copy of each node stay in the run's directory.
		p.args = append(p.args, "--data-dir", filepath.Join(dir, name+".data"))
	}
	p.args = append(p.args, extra...)
	return p, p.start(ctx)
}

func (p *Node) start(ctx context.Context) error {
	_ = os.Remove(p.ready)
	logf, err := os.OpenFile(filepath.Join(p.dir, p.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.exe, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.err = err
		}
		p.mu.Unlock()
		close(done)
	}()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(p.ready); err == nil {
			var r struct{ Addr string }
			if json.Unmarshal(b, &r) == nil && r.Addr != "" {
				if p.Addr == "" {
					p.Addr = r.Addr // first start only: restarts keep it
				}
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before serving (%v); see %s", p.Name, p.ExitErr(), filepath.Join(p.dir, p.Name+".log"))
		case <-deadline.C:
			p.Kill()
			return fmt.Errorf("%s not serving after 30s", p.Name)
		case <-ctx.Done():
			p.Kill()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Restart starts the process again with the same arguments.
// It listens on the same address as before, so clients find it again.
func (p *Node) Restart(ctx context.Context) error {
	for i, a := range p.args {
		if a == "--listen" && i+1 < len(p.args) && p.Addr != "" {
			p.args[i+1] = p.Addr
		}
	}
	return p.start(ctx)
}

// Done is closed when the current process exits.
func (p *Node) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is how the last process exited (nil while it runs or if it
// exited 0).
func (p *Node) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Pid is the current process id (0 before start).
func (p *Node) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Log is the path of the node's log file.
func (p *Node) Log() string { return filepath.Join(p.dir, p.Name+".log") }

// URL is the node's base URL: https when it runs with --tls-cert.
func (p *Node) URL() string {
	if slices.Contains(p.args, "--tls-cert") {
		return "https://" + p.Addr
	}
	return "http://" + p.Addr
}

// Alive reports whether the process has not exited.
func (p *Node) Alive() bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

func (p *Node) signal(s os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return errors.New("not started")
	}
	return p.cmd.Process.Signal(s)
}

// Kill sends SIGKILL and waits for the exit.
func (p *Node) Kill() {
	_ = p.signal(syscall.SIGKILL)
	_ = p.signal(procsig.Cont)
	<-p.Done()
}

// Stop sends SIGTERM (graceful hand-over) and waits up to d, then kills.
func (p *Node) Stop(d time.Duration) {
	_ = p.signal(procsig.Cont)
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.Done():
	case <-time.After(d):
		p.Kill()
	}
}

// Terminate sends SIGTERM and returns at once (see Done).
func (p *Node) Terminate() error { return p.signal(syscall.SIGTERM) }

// Hangup sends SIGHUP: the node reloads its token keys and certificate.
func (p *Node) Hangup() error { return p.signal(syscall.SIGHUP) }

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *Node) Pause() error  { return p.signal(procsig.Stop) }
func (p *Node) Resume() error { return p.signal(procsig.Cont) }
