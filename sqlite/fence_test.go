package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// TestMain lets the test binary act as another process that takes the
// file's write lock and keeps it.
func TestMain(m *testing.M) {
	if path := os.Getenv("BATON_TEST_HOLD_WRITE_LOCK"); path != "" {
		holdWriteLock(path)
		return
	}
	if arg := os.Getenv("BATON_TEST_WATCH"); arg != "" {
		watchProcess(arg)
		return
	}
	os.Exit(m.Run())
}

func holdWriteLock(path string) {
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	tx, err := db.Begin()
	if err == nil {
		_, err = tx.Exec(`INSERT INTO topics (topic) VALUES ('held')`)
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("holding")
	select {}
}

// startHolder starts a process that holds the write lock of path.
func startHolder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BATON_TEST_HOLD_WRITE_LOCK="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	return cmd
}

// TestFenceStoppedWriter: a process stopped inside a write transaction is
// killed once a write has waited FenceAfter, and the write then succeeds.
func TestFenceStoppedWriter(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("fencing reads /proc/locks: Linux only")
	}
	path := filepath.Join(t.TempDir(), "f.db")
	holder := startHolder(t, path)
	if err := holder.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{FenceAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.AcquireNode(ctx, "me", time.Second); err != nil {
		t.Fatalf("acquire behind a stopped writer: %v", err)
	}
	err = holder.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("holder ended with %v, want killed", err)
	}
	// Its uncommitted insert was rolled back.
	if _, err := s.Lock(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	if ts, _ := s.Topics(ctx); len(ts) != 0 {
		t.Fatalf("topics = %v", ts)
	}
}

// TestNoFenceRunningWriter: a running (slow) holder is never killed.
func TestNoFenceRunningWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	holder := startHolder(t, path)
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{FenceAfter: 50 * time.Millisecond, BusyTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.AcquireNode(context.Background(), "me", time.Second)
	if !errors.Is(err, baton.ErrUnavailable) {
		t.Fatalf("acquire behind a running writer: %v, want unavailable", err)
	}
	if err := holder.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the running holder was killed: %v", err)
	}
}
