package http

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/baton-pub/baton/hub"
)

func TestCoalescerGap(t *testing.T) {
	ms := int64(time.Millisecond)
	c := coalescer{max: 20 * time.Millisecond, perStream: coalescePerStream}
	streams := make([]eventStream, 1500)
	if g := c.gap(); g != 0 {
		t.Fatalf("gap with no stream busy: %d", g)
	}
	for i := range 500 {
		c.wrote(ms, &streams[i].counted)
		c.wrote(2*ms, &streams[i].counted) // counted once per window
	}
	if g, want := c.gap(), int64(500*coalescePerStream); g != want {
		t.Fatalf("gap with 500 busy streams: %v, want %v", time.Duration(g), time.Duration(want))
	}
	for i := range streams {
		c.wrote(3*ms, &streams[i].counted)
	}
	if g := c.gap(); g != int64(c.max) {
		t.Fatalf("gap with 1,500 busy streams: %v, want the most, %v", time.Duration(g), c.max)
	}
	// The next window: the last one's count holds until this one's is
	// larger.
	next := int64(coalesceWindow) + 5*ms
	c.wrote(next, &streams[0].counted)
	if g := c.gap(); g != int64(c.max) {
		t.Fatalf("gap after the window: %v, want the last window's, %v", time.Duration(g), c.max)
	}
	// Quiet for two windows: nothing is busy any more.
	later := next + 2*int64(coalesceWindow)
	c.wrote(later, &streams[1].counted)
	if g, want := c.gap(), int64(coalescePerStream); g != want {
		t.Fatalf("gap after a quiet window: %v, want one stream's, %v", time.Duration(g), time.Duration(want))
	}
	s := &streams[1]
	s.lastWrite = later
	if w := c.wait(later+int64(coalescePerStream)/2, s); w != coalescePerStream/2 {
		t.Fatalf("wait half a gap after a write: %v", w)
	}
	if w := c.wait(later+int64(coalescePerStream), s); w != 0 {
		t.Fatalf("wait a gap after a write: %v", w)
	}
	if w := c.wait(later, &eventStream{lastWrite: later}); w != 0 {
		t.Fatalf("wait before the first write: %v", w)
	}
	off := coalescer{max: -1, perStream: coalescePerStream}
	off.wrote(ms, &streams[2].counted)
	if g := off.gap(); g != 0 {
		t.Fatalf("gap when off: %d", g)
	}
}

// TestStreamCoalesces checks that a busy stream's events, published one at
// a time within the gap after a write, go out together in the next write,
// and that the first event after a quiet time goes at once.
func TestStreamCoalesces(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		const gap = time.Second
		srv, h, st := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer, StreamCoalesce: gap, Heartbeat: time.Minute})
		srv.streams.mu.Lock()
		srv.streams.co.perStream = gap // one busy stream: the whole gap
		srv.streams.mu.Unlock()
		addr := startServer(t, srv, nil)
		p := newPublisher(t, st, testTopic)

		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := fmt.Fprintf(c, "GET /v1/topics/%s/events HTTP/1.1\r\nHost: baton\r\n\r\n", testTopic); err != nil {
			t.Fatal(err)
		}
		waitStreams(t, srv, h, 1, 1)
		// reads returns the data events of each read until want in all.
		buf := make([]byte, 64<<10)
		reads := func(want int) []int {
			var got []int
			for total := 0; total < want; {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("read after %v events: %v", got, err)
				}
				if k := bytes.Count(buf[:n], []byte("\ndata: ")); k > 0 {
					got = append(got, k)
					total += k
				}
			}
			return got
		}
		p.publish(1)
		if got := reads(1); len(got) != 1 {
			t.Fatalf("first event in reads %v", got)
		}
		// The stream just wrote: these come 20 ms apart (a stream that
		// does not coalesce writes each on its own), all well within the
		// gap.
		for i := range 4 {
			if i > 0 {
				time.Sleep(20 * time.Millisecond) // the pace of the source, not a wait for the server
			}
			p.publish(1)
		}
		if got := reads(4); len(got) != 1 {
			t.Fatalf("4 events published within the gap came in reads of %v events, want one write of all", got)
		}
	})
}

// TestServerCoalesceGap: the gap the metrics report is the coalescer's
// while streams write, and 0 once nothing wrote for two windows.
func TestServerCoalesceGap(t *testing.T) {
	srv, _, _ := newStreamServer(t, hub.Options{}, Config{})
	st := srv.streams
	st.mu.Lock()
	st.co.winStart, st.co.inWin = st.now(), 300
	st.mu.Unlock()
	if g, want := srv.CoalesceGap(), 300*coalescePerStream; g != want {
		t.Fatalf("CoalesceGap() with 300 busy streams = %v, want %v", g, want)
	}
	st.mu.Lock()
	st.co.inWin = 5000
	st.mu.Unlock()
	if g := srv.CoalesceGap(); g != DefaultStreamCoalesce {
		t.Fatalf("CoalesceGap() with 5,000 busy streams = %v, want the most, %v", g, DefaultStreamCoalesce)
	}
	st.mu.Lock()
	st.co.winStart = st.now() - 3*int64(coalesceWindow)
	st.mu.Unlock()
	if g := srv.CoalesceGap(); g != 0 {
		t.Fatalf("CoalesceGap() when nothing wrote for three windows = %v, want 0", g)
	}
}
