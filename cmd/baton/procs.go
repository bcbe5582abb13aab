package main

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

// nodeProc is a `baton serve` child process, used by demo (and bench,
// chaos): real processes, killed and paused for real.
type nodeProc struct {
	Name  string
	Addr  string
	args  []string
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	ready string
}

// startNode starts `baton serve` with the given store and waits until it
// serves.
func startNode(ctx context.Context, dir, name, store string, extra ...string) (*nodeProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	p := &nodeProc{Name: name, dir: dir, ready: filepath.Join(dir, name+".ready")}
	p.args = append([]string{"serve", "--store", store, "--listen", "127.0.0.1:0", "--node", name,
		"--ready-file", p.ready}, extra...)
	return p, p.start(ctx, exe)
}

func (p *nodeProc) start(ctx context.Context, exe string) error {
	_ = os.Remove(p.ready)
	logf, err := os.OpenFile(filepath.Join(p.dir, p.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(exe, p.args...)
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
func (p *nodeProc) Restart(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return p.start(ctx, exe)
}

// Alive reports whether the process has not exited.
func (p *nodeProc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *nodeProc) signal(s syscall.Signal) error {
	if p.cmd == nil || p.cmd.Process == nil {
		return errors.New("not started")
	}
	return p.cmd.Process.Signal(s)
}

// Kill sends SIGKILL and waits for the exit.
func (p *nodeProc) Kill() {
	_ = p.signal(syscall.SIGKILL)
	_ = p.signal(syscall.SIGCONT)
	<-p.done
}

// Stop sends SIGTERM (graceful hand-over) and waits up to d, then kills.
func (p *nodeProc) Stop(d time.Duration) {
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.Kill()
	}
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *nodeProc) Pause() error  { return p.signal(syscall.SIGSTOP) }
func (p *nodeProc) Resume() error { return p.signal(syscall.SIGCONT) }
