package workload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/workload"
)

// feed is a fake node: its event stream serves items after Last-Event-ID,
// one every millisecond, up to max.
func feed(t *testing.T, name string, max uint64, hits *atomic.Int64) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		after, _ := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for seq := after + 1; seq <= max; seq++ {
			u := baton.Update{ID: "k", Value: json.RawMessage(strconv.FormatUint(seq, 10)), MsgID: fmt.Sprint("m", seq)}
			d, _ := json.Marshal(map[string]any{"seq": seq, "id": u.ID, "value": u.Value, "msg_id": u.MsgID,
				"hash": baton.HashItem("t", u), "epoch": 1, "publisher": name})
			if _, err := fmt.Fprintf(w, "id: %d\nevent: item\ndata: %s\n\n", seq, d); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
		<-r.Context().Done()
	}))
	t.Cleanup(s.Close)
	return s
}

// TestTerminalMove: a terminal moved to another node resumes after the
// last seq it received: the history has every seq once, in order.
func TestTerminalMove(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	a, b := feed(t, "a", 200, &hitsA), feed(t, "a", 200, &hitsB)
	h := checker.NewHistory()
	for i := 1; i <= 200; i++ {
		h.Sent("t", fmt.Sprint("m", i))
	}
	term, err := workload.StartTerminal(context.Background(), "x", "t", []string{a.URL, b.URL}, h,
		workload.TerminalOptions{StreamIdle: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Stop()
	poll.True(t, 10*time.Second, "seq 50 from the first node", func() bool { return term.Last() >= 50 })
	if term.Node() != a.URL {
		t.Fatalf("first node %q, want %q", term.Node(), a.URL)
	}
	if err := term.Move([]string{b.URL, a.URL}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "seq 200 after the move", func() bool { return term.Last() == 200 })
	if term.Node() != b.URL || term.Moves() != 1 || term.Streams() != 2 || hitsB.Load() != 1 {
		t.Fatalf("after the move: node %q, moves %d, streams %d, hits on b %d", term.Node(), term.Moves(), term.Streams(), hitsB.Load())
	}
	if err := term.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := h.Check(map[string][]string{"x": {"t"}}); !r.OK() || r.Delivered["x"] != 200 {
		t.Fatalf("checker: %+v", r)
	}
}

// TestTerminalSlow: SetSlow makes a terminal take its time per item.
func TestTerminalSlow(t *testing.T) {
	var hits atomic.Int64
	a := feed(t, "a", 1000, &hits)
	h := checker.NewHistory()
	term, err := workload.StartTerminal(context.Background(), "x", "t", []string{a.URL}, h,
		workload.TerminalOptions{Slow: 50 * time.Millisecond, ReadBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Stop()
	poll.True(t, 10*time.Second, "the first items", func() bool { return term.Last() >= 2 })
	start, n := time.Now(), term.Received()
	time.Sleep(300 * time.Millisecond) // the window in which the rate is measured
	if got := term.Received() - n; got > 10 {
		t.Fatalf("a slow terminal read %d items in %v", got, time.Since(start))
	}
	term.SetSlow(0)
	poll.True(t, 10*time.Second, "seq 1000 at full speed", func() bool { return term.Last() == 1000 })
}
