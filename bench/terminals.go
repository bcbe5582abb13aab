package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
	resumed  atomic.Int64
	counts   []atomic.Int64
	win      atomic.Pointer[window]
	mu       sync.Mutex
	firstErr error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// lastAt is the Unix ns of the latest counted arrival.
	lastAt atomic.Int64
}

// maxResumes bounds how often a terminal opens its stream again.
const maxResumes = 100

// window is one measurement window of a terminals group.
type window struct {
	since int64 // Unix ns: items due earlier are not counted
	lat   *shardedHist
}

// startTerminals connects n terminals, terminal i to base URL bases[i%len],
// at most dialers at a time, and waits (up to d) until all are connected.
// With resume, a terminal whose stream the server ends (a slow consumer
// is cut off when its live queue overflows) opens it again after its last
// event, as Baton's client does, up to maxResumes times; without, that
// terminal has failed.
func startTerminals(ctx context.Context, hc *http.Client, bases []string, topic string, n, bufSize, dialers int, d time.Duration, resume bool) (*terminals, error) {
	g := &terminals{n: n, counts: make([]atomic.Int64, n)}
	g.win.Store(&window{since: 1<<63 - 1, lat: newShardedHist(1)})
	ctx, g.cancel = context.WithCancel(ctx)
	sem := make(chan struct{}, dialers)
	path := "/v1/topics/" + url.PathEscape(topic) + "/events"
	for i := range n {
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
			var last uint64
			var lastp *uint64
			if resume {
				lastp = &last
			}
			onData := func(data []byte, at time.Time) {
				w := g.win.Load()
				t := sentAt(data)
				if t < w.since {
					return
				}
				now := at.UnixNano()
				w.lat.Record(i, time.Duration(now-t))
				g.counts[i].Add(1)
				g.lastAt.Store(now)
			}
			var err error
			for tries := 0; ; tries++ {
				err = stream(ctx, hc, bases[i%len(bases)], path, bufSize, lastp, func() {
					if tries == 0 {
						g.connected.Add(1)
						release()
					}
				}, onData)
				if err == nil || ctx.Err() != nil || !resume || last == 0 || tries == maxResumes {
					break
				}
				g.resumed.Add(1)
			}
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
	if !waitFor(ctx, d, func() bool { return g.connected.Load()+g.failed.Load() >= int64(n) }) || g.failed.Load() > 0 {
		err := g.err()
		g.stop()
		if err == nil {
			err = fmt.Errorf("%d of %d terminals connected within %v", g.connected.Load(), n, d)
		}
		return nil, err
	}
	return g, nil
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
