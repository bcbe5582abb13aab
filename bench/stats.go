package bench

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1µs to 10 minutes, with three
// significant digits.
const (
	histMin = 1
	histMax = int64(10 * time.Minute / time.Microsecond)
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, 3) }

// shardedHist is a latency histogram that many goroutines record into at
// once: each records into its own shard (by an index it chooses), so they
// rarely contend, and Merge folds the shards together.
type shardedHist struct {
	shards []histShard
}

type histShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards on separate cache lines
}

func newShardedHist(n int) *shardedHist {
	s := &shardedHist{shards: make([]histShard, n)}
	for i := range s.shards {
		s.shards[i].h = hdrhistogram.New(histMin, histMax, 2)
	}
	return s
}

// Record adds d to the shard i picks.
func (s *shardedHist) Record(i int, d time.Duration) {
	sh := &s.shards[i%len(s.shards)]
	sh.mu.Lock()
	_ = sh.h.RecordValue(clampMicros(d))
	sh.mu.Unlock()
}

// Merge returns all shards folded into one histogram.
func (s *shardedHist) Merge() *hdrhistogram.Histogram {
	out := hdrhistogram.New(histMin, histMax, 2)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(sh.h)
		sh.mu.Unlock()
	}
	return out
}

func clampMicros(d time.Duration) int64 {
	us := d.Microseconds()
	if us < histMin {
		return histMin
	}
	if us > histMax {
		return histMax
	}
	return us
}

// Percentiles is a latency distribution in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	// Curve is the percentile curve (percentile, ms) for plots; not in JSON.
	Curve []CurvePoint `json:"-"`
}

// CurvePoint is one point of a percentile curve.
type CurvePoint struct {
	Percentile float64
	Millis     float64
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	ms := func(us int64) float64 { return math.Round(float64(us)/10) / 100 }
	p := Percentiles{Count: h.TotalCount()}
	if p.Count == 0 {
		return p
	}
	p.P50, p.P90, p.P99 = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99))
	p.P999, p.Max = ms(h.ValueAtQuantile(99.9)), ms(h.Max())
	// The curve at 1/(1-q) = 10^(k/16), up to the count: even steps on
	// the plot's log axis.
	for k := 0; ; k++ {
		x := math.Pow(10, float64(k)/16)
		if x > float64(p.Count) {
			break
		}
		q := 100 * (1 - 1/x)
		p.Curve = append(p.Curve, CurvePoint{Percentile: q, Millis: ms(h.ValueAtQuantile(q))})
	}
	p.Curve = append(p.Curve, CurvePoint{Percentile: 100, Millis: p.Max})
	return p
}

// sampleStats summarises a few samples (hand-over times) exactly.
func sampleStats(ms []float64) Percentiles {
	p := Percentiles{Count: int64(len(ms))}
	if len(ms) == 0 {
		return p
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	at := func(q float64) float64 {
		// Nearest rank: with K samples, p99 is the largest unless K >= 100.
		i := int(math.Ceil(q/100*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	p.P50, p.P90, p.P99, p.P999, p.Max = at(50), at(90), at(99), at(99.9), s[len(s)-1]
	return p
}
