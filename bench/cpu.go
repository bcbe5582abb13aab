package bench

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

// cpuMeter measures this process's CPU (user and system, every thread)
// from its start: the load generator's own share of the machine, reported
// beside the figures it produced so that a reader can tell when the
// generator, not the server, was the limit (docs/benchmarks.md "The load
// generator").
type cpuMeter struct {
	wall time.Time
	cpu  time.Duration
}

func startCPU() cpuMeter { return cpuMeter{wall: time.Now(), cpu: selfCPU()} }

// cores is the CPU used since start over the wall time, in cores.
func (m cpuMeter) cores() float64 {
	el := time.Since(m.wall)
	if el <= 0 {
		return 0
	}
	return (selfCPU() - m.cpu).Seconds() / el.Seconds()
}

// profileSelf writes a CPU profile of the bench process (the load
// generator, not the servers: those take BATON_BENCH_PPROF_PORT) to the
// file BATON_BENCH_CPUPROFILE names, if set, until the returned stop.
func profileSelf() (stop func(), err error) {
	path := os.Getenv("BATON_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
