package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// terminals are n SSE readers of one topic spread over some nodes. Every
// item whose due time is at or after since is counted, and its latency
// (arrival minus due time) recorded, in the current window.
type terminals struct {
	n         int
	connected atomic.Int64
	failed    atomic.Int64
	// resumed counts streams the server ended that were opened again
	// after their last event, as a client does (only with resume).
	resumed atomic.Int64
	counts  []atomic.Int64
	// sample: terminals i%sample == 0 timestamp their items (sampleEvery).
	sample   int
	win      atomic.Pointer[window]
	mu       sync.Mutex
	firstErr error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// lastAt is the Unix ns of the latest arrival a timestamping terminal
	// counted.
	lastAt atomic.Int64
}

// maxResumes bounds how often a terminal opens its stream again.
const maxResumes = 100

// window is one measurement window of a terminals group.
type window struct {
	since int64 // Unix ns: items due earlier are not counted
	lat   *shardedHist
}

// Subscribe opens terminal i's stream and reads it: connected is called
// once the stream is open (items published after that reach it), fn for
// every item's data (valid until fn returns). It returns nil when ctx ends,
// an error when the stream fails. Baton's is an SSE stream (stream); a
// peer's is its own client (bench/peers). It is called from one goroutine
// per terminal.
type Subscribe func(ctx context.Context, i int, connected func(), fn func(data []byte)) error

// sampleEvery is the share of terminals that timestamp: of n terminals,
// every sampleEvery(n)-th records latencies (at most about 100 of them),
// while all count their items. A timestamp and a histogram record per
// delivery at 10k terminals cost the load generator more CPU than reading;
// 100 terminals spread over the connection order give the same
// percentiles (docs/benchmarks.md "The load generator").
//
// BATON_BENCH_TIMESTAMP_ALL=1 makes every terminal timestamp, as before
// sampling, to compare the generator's CPU.
func sampleEvery(n int) int {
	if os.Getenv("BATON_BENCH_TIMESTAMP_ALL") == "1" {
		return 1
	}
	return max(1, n/100)
}

// startTerminals connects n terminals, terminal i to base URL bases[i%len],
// at most dialers at a time, and waits (up to d) until all are connected.
// With resume, a terminal whose stream the server ends (a slow consumer
// is cut off when its live queue overflows) opens it again after its last
// event, as Baton's client does, up to maxResumes times; without, that
// terminal has failed.
func startTerminals(ctx context.Context, hc *http.Client, bases []string, topic string, n, bufSize, dialers int, d time.Duration, resume bool) (*terminals, error) {
	g := newTerminals(n)
	path := "/v1/topics/" + url.PathEscape(topic) + "/events"
	sub := func(ctx context.Context, i int, connected func(), fn func([]byte)) error {
		var last uint64
		var lastp *uint64
		if resume {
			lastp = &last
		}
		for tries := 0; ; tries++ {
			err := stream(ctx, hc, bases[i%len(bases)], path, bufSize, lastp, func() {
				if tries == 0 {
					connected()
				}
			}, fn)
			if err == nil || ctx.Err() != nil || !resume || last == 0 || tries == maxResumes {
				return err
			}
			g.resumed.Add(1)
		}
	}
	return g, g.start(ctx, sub, dialers, d)
}

func newTerminals(n int) *terminals {
	g := &terminals{n: n, counts: make([]atomic.Int64, n), sample: sampleEvery(n)}
	g.win.Store(&window{since: 1<<63 - 1, lat: newShardedHist(1)})
	return g
}

// start runs the n terminals with sub, at most dialers connecting at a
// time, and waits (up to d) until all are connected; on failure it stops
// them.
func (g *terminals) start(ctx context.Context, sub Subscribe, dialers int, d time.Duration) error {
	ctx, g.cancel = context.WithCancel(ctx)
	sem := make(chan struct{}, dialers)
	for i := range g.n {
		sem <- struct{}{}
		if ctx.Err() != nil {
			break
		}
		g.wg.Go(func() {
			released := false
			release := func() {
				if !released {
					released = true
					<-sem
				}
			}
			defer release()
			timed := i%g.sample == 0
			onData := func(data []byte) {
				w := g.win.Load()
				t := sentAt(data)
				if t < w.since {
					return
				}
				g.counts[i].Add(1)
				if timed {
					now := time.Now().UnixNano()
					w.lat.Record(i/g.sample, time.Duration(now-t))
					g.lastAt.Store(now)
				}
			}
			err := sub(ctx, i, func() {
				g.connected.Add(1)
				release()
			}, onData)
			if err != nil && ctx.Err() == nil {
				g.failed.Add(1)
				g.mu.Lock()
				if g.firstErr == nil {
					g.firstErr = fmt.Errorf("terminal %d: %w", i, err)
				}
				g.mu.Unlock()
			}
		})
	}
	if !waitFor(ctx, d, func() bool { return g.connected.Load()+g.failed.Load() >= int64(g.n) }) || g.failed.Load() > 0 {
		err := g.err()
		g.stop()
		if err == nil {
			err = fmt.Errorf("%d of %d terminals connected within %v", g.connected.Load(), g.n, d)
		}
		return err
	}
	return nil
}

// reset starts a new window: counts from zero, items due from since on.
func (g *terminals) reset(since time.Time, shards int) *window {
	for i := range g.counts {
		g.counts[i].Store(0)
	}
	w := &window{since: since.UnixNano(), lat: newShardedHist(shards)}
	g.win.Store(w)
	return w
}

// min is the fewest items any terminal counted in the window.
func (g *terminals) min() int64 {
	m := int64(-1)
	for i := range g.counts {
		if c := g.counts[i].Load(); m < 0 || c < m {
			m = c
		}
	}
	return max(m, 0)
}

// total is the items counted by all terminals in the window.
func (g *terminals) total() int64 {
	var t int64
	for i := range g.counts {
		t += g.counts[i].Load()
	}
	return t
}

func (g *terminals) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.firstErr
}

func (g *terminals) stop() {
	g.cancel()
	g.wg.Wait()
}
