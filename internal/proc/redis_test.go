package proc_test

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/proc"
)

func do(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(line, "$") && !strings.HasPrefix(line, "$-1") {
		line, _ = r.ReadString('\n')
	}
	return strings.TrimSpace(line)
}

// TestRedisSurvivesKill: a write acknowledged before a SIGKILL is there
// after the restart (append-only file, fsync always), on the same address.
func TestRedisSurvivesKill(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	r, err := proc.StartRedis(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Kill()
	if got := do(t, r.Addr, "SET k v1"); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	addr := r.Addr
	if err := r.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.Addr != addr || !r.Alive() {
		t.Fatalf("restarted on %s (alive %v), was %s", r.Addr, r.Alive(), addr)
	}
	if got := do(t, r.Addr, "GET k"); got != "v1" {
		t.Fatalf("GET after restart: %q", got)
	}
	r.Kill()
	if r.Alive() {
		t.Fatal("alive after Kill")
	}
}
