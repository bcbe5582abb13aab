package proc

import (
	"os"
	"testing"
)

func TestStatCPUTicks(t *testing.T) {
	// A command name with a space and a ')' in it; utime 1500, stime 250.
	line := []byte("4242 (baton (x) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 1500 250 0 0 20 0 12 0 100 1000 200 18446744073709551615\n")
	got, err := statCPUTicks(line)
	if err != nil || got != 1750 {
		t.Fatalf("statCPUTicks = %d, %v; want 1750", got, err)
	}
	for _, bad := range []string{"4242 baton S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 0"} {
		if _, err := statCPUTicks([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCPUTimeOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the reading moves: it must, or the parse reads a
	// field that does not count CPU time.
	x := 0
	for i := 0; ; i++ {
		x += i * i
		if i%1_000_000 == 0 {
			if now, err := CPUTime(os.Getpid()); err != nil {
				t.Fatal(err)
			} else if now > before {
				break
			}
		}
	}
	_ = x
}
