// Package proc runs `baton serve` as real child processes and injects
// faults into them (SIGKILL, SIGSTOP/SIGCONT, SIGTERM). The demo, bench,
// chaos and the integration tests use it.
package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Node is a `baton serve` child process.
type Node struct {
	Name  string
	Addr  string
	args  []string
	exe   string
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	ready string
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
	p.args = append([]string{"serve", "--store", store, "--listen", "127.0.0.1:0", "--node", name,
		"--ready-file", p.ready}, extra...)
	return p, p.start(ctx)
}

func (p *Node) start(ctx context.Context) error {
	_ = os.Remove(p.ready)
	logf, err := os.OpenFile(filepath.Join(p.dir, p.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(p.exe, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = os.Environ()
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(p.ready); err == nil {
			var r struct{ Addr string }
			if json.Unmarshal(b, &r) == nil && r.Addr != "" {
				p.Addr = r.Addr
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before serving (%v); see %s", p.Name, p.err, filepath.Join(p.dir, p.Name+".log"))
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

// Done is closed when the process exits.
func (p *Node) Done() <-chan struct{} { return p.done }

// Log is the path of the node's log file.
func (p *Node) Log() string { return filepath.Join(p.dir, p.Name+".log") }

// URL is the node's base URL.
func (p *Node) URL() string { return "http://" + p.Addr }

// Alive reports whether the process has not exited.
func (p *Node) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *Node) signal(s syscall.Signal) error {
	if p.cmd == nil || p.cmd.Process == nil {
		return errors.New("not started")
	}
	return p.cmd.Process.Signal(s)
}

// Kill sends SIGKILL and waits for the exit.
func (p *Node) Kill() {
	_ = p.signal(syscall.SIGKILL)
	_ = p.signal(syscall.SIGCONT)
	<-p.done
}

// Stop sends SIGTERM (graceful hand-over) and waits up to d, then kills.
func (p *Node) Stop(d time.Duration) {
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.Kill()
	}
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *Node) Pause() error  { return p.signal(syscall.SIGSTOP) }
func (p *Node) Resume() error { return p.signal(syscall.SIGCONT) }
