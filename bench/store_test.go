package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkSQLiteAppend is the SQLite engine's ingest path alone (no HTTP,
// no publisher), beside the raw insert ceiling, for profiling:
//
//	go test ./bench -run - -bench SQLite -cpuprofile cpu.out
func BenchmarkSQLiteAppend(b *testing.B) {
	for _, batch := range ingestBatches {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st, err := sqlite.Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "b.db")+"?sync="+syncLevel, sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			pad := padFor(128)
			var n int64
			b.ResetTimer()
			for range b.N {
				ups := make([]baton.Update, batch)
				for i := range ups {
					ups[i] = baton.Update{ID: fmt.Sprintf("q.%d", n%50), Value: appendValue(nil, n, pad), MsgID: fmt.Sprintf("b-%d", n)}
					n++
				}
				if _, err := st.Append(b.Context(), "t", ups); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// syncLevel is "full" by default, as the store; BATON_BENCH_SYNC=normal
// takes the fsyncs out to profile the CPU alone.
var syncLevel = func() string {
	if v := os.Getenv("BATON_BENCH_SYNC"); v != "" {
		return v
	}
	return "full"
}()

// BenchmarkSQLiteAppendParallel is 16 concurrent single-update appends, as
// concurrent HTTP sources make them.
func BenchmarkSQLiteAppendParallel(b *testing.B) {
	st, err := sqlite.Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "b.db")+"?sync="+syncLevel, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	pad := padFor(128)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := n.Add(1)
			u := baton.Update{ID: fmt.Sprintf("q.%d", k%50), Value: appendValue(nil, k, pad), MsgID: fmt.Sprintf("p-%d", k)}
			if _, err := st.Append(b.Context(), "t", []baton.Update{u}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
