package bench

import (
	"cmp"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/wire"
)

// TestPostersFollowHolder: once an answer names the topic's lease holder,
// every poster of the topic sends there; with spread, each keeps to its
// node; a request to the holder that fails sends them back to their own.
func TestPostersFollowHolder(t *testing.T) {
	var toA, toB atomic.Int64
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toB.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer b.Close()
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toA.Add(1)
		w.Header().Set(wire.HolderHeader, strings.TrimPrefix(b.URL, "http://"))
		w.WriteHeader(http.StatusCreated)
	}))
	defer a.Close()
	ctx := context.Background()
	batch := Batch{Src: "s", First: 1, Due: []int64{1}}
	for _, spread := range []bool{false, true} {
		toA.Store(0)
		toB.Store(0)
		ps := newPosters(http.DefaultClient, []string{a.URL, b.URL}, "t", spread)
		for range 4 {
			if err := ps[0].Send(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		if want := map[bool][2]int64{false: {1, 3}, true: {4, 0}}[spread]; toA.Load() != want[0] || toB.Load() != want[1] {
			t.Fatalf("spread %v: %d to a, %d to b; want %v", spread, toA.Load(), toB.Load(), want)
		}
	}
	ps := newPosters(http.DefaultClient, []string{a.URL, b.URL}, "t", false)
	if err := ps[0].Send(ctx, batch); err != nil { // learns b
		t.Fatal(err)
	}
	b.Close()
	if err := ps[0].Send(ctx, batch); err == nil {
		t.Fatal("a send to the closed holder succeeded")
	}
	toA.Store(0)
	if err := ps[0].Send(ctx, batch); err != nil || toA.Load() != 1 {
		t.Fatalf("after the holder failed: %v, %d to a; want its own node again", err, toA.Load())
	}
}

// sendLog is a Sender that records each batch with the time of its clock
// when it was sent.
type sendLog struct {
	clock baton.Clock
	mu    sync.Mutex
	sent  []sentBatch
	items int64
}

type sentBatch struct {
	at int64 // Unix ns
	b  Batch
}

func (l *sendLog) Send(ctx context.Context, b Batch) error {
	at := l.clock.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, sentBatch{at, Batch{Src: b.Src, First: b.First, Due: slices.Clone(b.Due)}})
	l.items += int64(len(b.Due))
	return nil
}

func (l *sendLog) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.items
}

// TestOpenLoopSchedule: the open loop sends every item of its schedule once,
// in batches of at most Batch items numbered in order, each item due on the
// schedule (start + k/Rate); it wakes when the next item is due, but at most
// once a linger, and sends every item due then, so that items further apart
// than the linger each go out at their due time, and closer ones wait at
// most a linger. A fake clock moves from one wake of the loop to the next
// once the items due are sent.
func TestOpenLoopSchedule(t *testing.T) {
	for _, tc := range []struct {
		rate     float64
		batch    int
		requests int // requests in 60 ms
		maxWait  time.Duration
	}{
		{rate: 300, batch: 100, requests: 18},                                   // 3.33 ms apart: a wake per item, on time
		{rate: 2000, batch: 100, requests: 61, maxWait: 500 * time.Microsecond}, // 0.5 ms apart: two items a linger (one at 0, one at 60 ms)
		{rate: 20000, batch: 7, requests: 181, maxWait: time.Millisecond},       // 20 items a linger, in 3 batches
	} {
		start := time.Unix(1000, 0)
		clock := clocktest.New(start)
		l := &sendLog{clock: clock}
		o := &openLoop{Rate: tc.rate, Dur: 60 * time.Millisecond, Batch: tc.batch, Senders: 4, Src: "s",
			Posters: []Sender{l}, MaxLag: time.Second, Linger: time.Millisecond, Clock: clock}
		done := make(chan loopResult, 1)
		go func() { done <- o.run(context.Background()) }()
		total := int64(tc.rate * 0.06)
		interval := float64(time.Second) / tc.rate
		var res loopResult
		deadline := time.Now().Add(10 * time.Second)
	drive:
		for {
			if time.Now().After(deadline) {
				t.Fatalf("rate %v: at %v after the start %d items sent; the loop waits for a later wake or is stuck",
					tc.rate, clock.Now().Sub(start), l.count())
			}
			select {
			case res = <-done:
				break drive
			default:
			}
			// Once the loop waits and the items due are sent, move to
			// its wake.
			next, ok := clock.Next()
			var due int64 // items due by now
			for due < total && time.Duration(float64(due)*interval) <= clock.Now().Sub(start) {
				due++
			}
			if !ok || l.count() < due {
				runtime.Gosched()
				continue
			}
			clock.Advance(next.Sub(clock.Now()))
		}
		if res.Aborted || res.Sent != total || res.Acked != total || res.Errors != 0 {
			t.Fatalf("rate %v: %+v; want %d sent and acked", tc.rate, res, total)
		}
		if len(l.sent) != tc.requests {
			t.Fatalf("rate %v: %d requests; want %d", tc.rate, len(l.sent), tc.requests)
		}
		slices.SortFunc(l.sent, func(a, b sentBatch) int { return cmp.Compare(a.b.First, b.b.First) })
		var next int64
		for _, s := range l.sent {
			if s.b.First != next || len(s.b.Due) == 0 || len(s.b.Due) > tc.batch {
				t.Fatalf("rate %v: a batch of %d from item %d after item %d; want from %d, 1 to %d items",
					tc.rate, len(s.b.Due), s.b.First, next-1, next, tc.batch)
			}
			for i, due := range s.b.Due {
				k := s.b.First + int64(i)
				if want := start.UnixNano() + int64(time.Duration(float64(k)*interval)); due != want {
					t.Fatalf("rate %v: item %d due at %d; want %d (start + k/rate)", tc.rate, k, due, want)
				}
				if wait := time.Duration(s.at - due); wait < 0 || wait > tc.maxWait {
					t.Fatalf("rate %v: item %d sent %v after it was due; want 0 to %v", tc.rate, k, wait, tc.maxWait)
				}
			}
			next += int64(len(s.b.Due))
		}
		if next != total {
			t.Fatalf("rate %v: %d items sent; want %d", tc.rate, next, total)
		}
	}
}
