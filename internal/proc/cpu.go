package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ). It
// is 100 on every Linux architecture Go supports; sysconf(_SC_CLK_TCK)
// would need cgo.
const clockTick = 10 * time.Millisecond

// CPUTime is the CPU time (user plus system) process pid has used so far,
// read from /proc/PID/stat (Linux only), at a resolution of 10 ms.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	ticks, err := statCPUTicks(b)
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	return time.Duration(ticks) * clockTick, nil
}

// statCPUTicks is utime + stime of a /proc/PID/stat line, in clock ticks:
// fields 14 and 15 (proc(5)). The command name, field 2, is in parentheses
// and may hold spaces and parentheses itself, so fields are counted after
// its last ')'.
func statCPUTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat: no command name")
	}
	// After ") " come field 3 (state) onwards: utime is field 14, the
	// 12th of these.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat: %d fields after the command name", len(f))
	}
	var sum uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse stat: %w", err)
		}
		sum += n
	}
	return sum, nil
}
