package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// TestWatcherCost measures (it asserts nothing: run it by hand with
// BATON_MEASURE_WATCHER=1 -v) what the change watcher of an idle process
// costs while another process renews its node lease: the file holds
// BATON_MEASURE_TOPICS topic leases (default 10,000) under one node lease,
// the watching process (a child: its CPU time is its own) subscribes to
// every topic, and the parent renews at BATON_MEASURE_RATE per second
// (default 50) for 5 seconds.
func TestWatcherCost(t *testing.T) {
	if os.Getenv("BATON_MEASURE_WATCHER") == "" {
		t.Skip("a measurement: set BATON_MEASURE_WATCHER=1")
	}
	topics := 10000
	if v, err := strconv.Atoi(os.Getenv("BATON_MEASURE_TOPICS")); err == nil {
		topics = v
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	s, err := sqlite.Open(ctx, "sqlite://"+path+"?sync=normal", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rate := 50
	if v, err := strconv.Atoi(os.Getenv("BATON_MEASURE_RATE")); err == nil && v > 0 {
		rate = v
	}
	renew := setupLeases(t, s, topics)
	var idle float64 // CPU share with no renewals
	for _, rate := range []int{0, rate} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BATON_TEST_WATCH="+path+","+strconv.Itoa(topics))
		in, _ := cmd.StdinPipe()
		outp, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewReader(outp)
		if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("watcher: %q %v", line, err)
		}
		fmt.Fprintln(in, "go")
		out.ReadString('\n') // "started"
		const window = 5 * time.Second
		start := time.Now()
		n := 0
		if rate == 0 {
			<-time.After(window)
		} else {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			for time.Since(start) < window {
				<-tick.C
				renew()
				n++
			}
			tick.Stop()
		}
		wall := time.Since(start)
		in.Close()
		line, _ := out.ReadString('\n')
		cmd.Wait()
		var cpu time.Duration
		var wakes int
		fmt.Sscanf(line, "%d %d", &cpu, &wakes)
		share := cpu.Seconds() / wall.Seconds()
		if rate == 0 {
			idle = share
			t.Logf("%d topics, no renewals: watcher process CPU %.2f%% of a core, %d wake-ups", topics, 100*share, wakes)
			continue
		}
		t.Logf("%d topics, %d renewals/s: watcher process CPU %.2f%% of a core, %.0f µs more per renewal than idle, %d wake-ups",
			topics, rate, 100*share, (share-idle)*wall.Seconds()*1e6/float64(n), wakes)
	}
}

func setupLeases(t *testing.T, s *sqlite.Store, topics int) (renew func()) {
	ctx := context.Background()
	nl, err := s.AcquireNode(ctx, "renewer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range topics {
		if _, err := s.Acquire(ctx, fmt.Sprintf("t%05d", i), nl); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		if _, err := s.RenewNode(ctx, nl, time.Hour); err != nil {
			t.Error(err)
		}
	}
}

// watchProcess is the watching process of TestWatcherCost: it opens the
// store, subscribes to every topic, and reports the CPU time it spent (and
// the wake-ups it got) between "go" and the end of its input.
func watchProcess(arg string) {
	path, count, _ := strings.Cut(arg, ",")
	topics, _ := strconv.Atoi(count)
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer s.Close()
	var wakes atomic.Int64
	for i := range topics {
		sub := s.Subscribe(fmt.Sprintf("t%05d", i), baton.SignalAppend|baton.SignalCommit|baton.SignalLock)
		go func() {
			for range sub.C() {
				wakes.Add(1)
			}
		}()
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	in.ReadString('\n')
	before, woken := cpuTime(), wakes.Load()
	fmt.Println("started")
	in.ReadString('\n') // EOF
	fmt.Println(int64(cpuTime()-before), wakes.Load()-woken)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
