package sqlite_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkAppend is the append path alone (group commit, one topic), at
// both sync levels: "normal" shows the CPU cost of the statements, "full"
// adds the fsync every acknowledged item waits for.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []string{"normal", "full"} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, batch), func(b *testing.B) {
				st, err := sqlite.Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "b.db")+"?sync="+sync, sqlite.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				var n int64
				b.ResetTimer()
				cpu0 := cpuTime()
				for range b.N {
					ups := make([]baton.Update, batch)
					for i := range ups {
						ups[i] = baton.Update{ID: fmt.Sprintf("q.%d", n%50), Value: []byte(fmt.Sprintf(`{"n":%d}`, n)), MsgID: fmt.Sprintf("b-%d", n)}
						n++
					}
					if _, err := st.Append(b.Context(), "t", ups); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "items/s")
				// The process's CPU time per item: what a loaded machine
				// (other processes sharing its cores) distorts least.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/item")
			})
		}
	}
}

// BenchmarkAppendParallel is single-update appends from 16 goroutines, as
// concurrent sources make them (group commit at work).
func BenchmarkAppendParallel(b *testing.B) {
	st, err := sqlite.Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "b.db")+"?sync=normal", sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := n.Add(1)
			u := baton.Update{ID: fmt.Sprintf("q.%d", k%50), Value: []byte(fmt.Sprintf(`{"n":%d}`, k)), MsgID: fmt.Sprintf("p-%d", k)}
			if _, err := st.Append(b.Context(), "t", []baton.Update{u}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/item")
}
