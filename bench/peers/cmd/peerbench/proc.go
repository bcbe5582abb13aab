package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// server is a peer's server process, killed with the driver (Pdeathsig).
type server struct {
	cmd *exec.Cmd
	log *os.File
}

// startServer runs bin with args, its output appended to dir/name.log.
func startServer(dir, name, bin string, args ...string) (*server, error) {
	lf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &server{cmd: cmd, log: lf}, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// kill ends the server at once (SIGKILL) and waits for it.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.log.Close()
}

// waitPort polls until addr accepts a TCP connection or d passes.
func waitPort(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections within %v: %w", addr, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
