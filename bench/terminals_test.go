package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestTerminalResumesAfterACut: a server that ends a stream (as Baton does
// to a slow consumer) sees the terminal come back after its last event,
// with resume; without, the terminal has failed.
func TestTerminalResumesAfterACut(t *testing.T) {
	var mu sync.Mutex
	var asked []string // Last-Event-ID of each subscription
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		from, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		for seq := from + 1; seq <= from+3; seq++ {
			fmt.Fprintf(w, "id: %d\ndata: {\"seq\":%d,\"value\":{\"t\":%d}}\n\n", seq, seq, time.Now().UnixNano())
		}
		w.(http.Flusher).Flush()
		if from == 0 {
			return // a new stream is cut after three events
		}
		<-r.Context().Done()
	}))
	defer srv.Close()
	defer srv.CloseClientConnections() // before Close, so that no handler is left waiting

	ctx := context.Background()
	g, err := startTerminals(ctx, srv.Client(), []string{srv.URL}, "t", 1, 4096, 1, 5*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.stop()
	g.reset(time.Unix(0, 1), 1)
	if !waitFor(ctx, 5*time.Second, func() bool { return g.resumed.Load() == 1 }) {
		t.Fatalf("no resume after the cut (err %v)", g.err())
	}
	g.stop()
	mu.Lock()
	if len(asked) != 2 || asked[0] != "" || asked[1] != "3" {
		t.Fatalf("subscriptions asked for %q, want a fresh one then one after 3", asked)
	}
	if err := g.err(); err != nil {
		t.Fatalf("a resumed terminal reports %v", err)
	}

	mu.Unlock()

	// Without resume the cut is the terminal's end: it fails, at once or
	// once connected.
	g, err = startTerminals(ctx, srv.Client(), []string{srv.URL}, "t", 1, 4096, 1, 5*time.Second, false)
	if err == nil {
		defer g.stop()
		if !waitFor(ctx, 5*time.Second, func() bool { return g.err() != nil }) {
			t.Fatal("a cut terminal without resume did not fail")
		}
		if n := g.resumed.Load(); n != 0 {
			t.Fatalf("resumed %d times without resume", n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[len(asked)-1] != "" {
		t.Fatalf("a terminal without resume asked for %q", asked[len(asked)-1])
	}
}

// TestSampledTimestamps: every terminal counts every item, and only every
// sampleEvery(n)-th records its latency, unless BATON_BENCH_TIMESTAMP_ALL.
func TestSampledTimestamps(t *testing.T) {
	for _, all := range []bool{false, true} {
		if all {
			t.Setenv("BATON_BENCH_TIMESTAMP_ALL", "1")
		}
		const n, items = 250, 3
		g := newTerminals(n)
		due := time.Now().UnixNano()
		sub := func(ctx context.Context, i int, connected func(), fn func([]byte)) error {
			connected()
			for k := range items {
				fn([]byte(fmt.Sprintf(`{"seq":%d,"value":{"t":%d}}`, k+1, due)))
			}
			<-ctx.Done()
			return nil
		}
		w := g.reset(time.Unix(0, due), 8)
		if err := g.start(context.Background(), sub, 50, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if !waitFor(context.Background(), 5*time.Second, func() bool { return g.total() == n*items }) {
			t.Fatalf("counted %d of %d", g.total(), n*items)
		}
		g.stop()
		timed := int64(n / 2) // sampleEvery(250) is 2
		if all {
			timed = n
		}
		if got := w.lat.Merge().TotalCount(); got != timed*items {
			t.Errorf("all=%v: %d latencies recorded, want %d", all, got, timed*items)
		}
	}
}
