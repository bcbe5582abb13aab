package http

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/testlog"
	"github.com/baton-pub/baton/wire"
)

// stream is an open event stream read in the background.
type stream struct {
	resp   *nethttp.Response
	events chan wire.Event
	done   chan error // ReadEvents' result, once the stream ended
	cancel context.CancelFunc
}

// openStream GETs the topic's events; lastID, if not empty, is sent as
// Last-Event-ID. It fails the test unless the answer is an event stream.
func openStream(t testing.TB, client *nethttp.Client, url, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := nethttp.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	s := &stream{resp: resp, events: make(chan wire.Event, 4096), done: make(chan error, 1), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

// run starts reading the stream into s.events.
func (s *stream) run() *stream {
	go func() {
		err := wire.ReadEvents(s.resp.Body, func(ev wire.Event) error {
			s.events <- ev.Clone()
			return nil
		})
		close(s.events)
		s.done <- err
	}()
	return s
}

// ended says why a stream's events ended, if they did.
func (s *stream) ended() error {
	select {
	case err := <-s.done:
		if err == nil {
			return errors.New("stream ended by the server")
		}
		return err
	default:
		return nil
	}
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, or fails the test after d.
func (s *stream) next(t testing.TB, d time.Duration) (wire.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
		return wire.Event{}, false
	}
}

func eventsURL(base, topic, query string) string {
	u := base + "/v1/topics/" + topic + "/events"
	if query != "" {
		u += "?" + query
	}
	return u
}

// checkItem decodes an item event and checks it against the store.
func checkItem(t testing.TB, st baton.Store, ev wire.Event, want uint64) wire.Item {
	t.Helper()
	if ev.Type != "item" {
		t.Fatalf("event %q, want item (want seq %d)", ev.Type, want)
	}
	d, err := ev.Item()
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := ev.Seq(); err != nil || seq != d.Seq {
		t.Fatalf("id %q for seq %d", ev.ID, d.Seq)
	}
	if d.Seq != want {
		t.Fatalf("got seq %d, want %d (gap or duplicate)", d.Seq, want)
	}
	if h := baton.HashItem(testTopic, baton.Update{ID: d.ID, Value: d.Value, MsgID: d.MsgID}); h != d.Hash {
		t.Fatalf("seq %d: hash %s, recomputed %s", d.Seq, d.Hash, h)
	}
	cur, err := st.Cursor(context.Background(), testTopic)
	if err != nil {
		t.Fatal(err)
	}
	if d.Seq > cur.Seq {
		t.Fatalf("seq %d delivered before it was published (cursor %d)", d.Seq, cur.Seq)
	}
	return d
}

func TestEventsHeadersAndHeartbeat(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{Heartbeat: 20 * time.Millisecond})
	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, ""), "")
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := s.resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	br := bufio.NewReader(s.resp.Body)
	var lines []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
		if line == ": hb\n" {
			if lines[0] != "retry: 1000\n" {
				t.Fatalf("stream starts with %q", lines[0])
			}
			return
		}
	}
	t.Fatalf("no heartbeat in %q", lines)
}

func TestEventsBadRequests(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	cases := []struct{ path, lastID, field string }{
		{"/v1/topics/quotes/events?after=x", "", "after"},
		{"/v1/topics/quotes/events?after=-1", "", "after"},
		{"/v1/topics/quotes/events?after=", "", "after"},
		{"/v1/topics/quotes/events", "abc", "Last-Event-ID"},
		{"/v1/topics/quotes/events?after=3", "-2", "Last-Event-ID"},
		{"/v1/topics/bad!topic/events", "", "topic"},
	}
	for _, c := range cases {
		var bad wire.ErrorResponse
		hdr := map[string]string{}
		if c.lastID != "" {
			hdr["Last-Event-ID"] = c.lastID
		}
		resp := e.do("GET", c.path, nil, hdr, &bad)
		if resp.StatusCode != 400 || bad.Error.Code != baton.CodeInvalid || bad.Error.Field != c.field {
			t.Errorf("GET %s (Last-Event-ID %q): %d %+v, want 400 field %s", c.path, c.lastID, resp.StatusCode, bad.Error, c.field)
		}
	}
}

// TestEventsResumeUnderLoad reconnects terminals again and again, by
// Last-Event-ID and by ?after, while items are committed (with appended but
// unpublished items behind the cursor all along), and checks that together
// the connections deliver every item once, in order, never unpublished.
func TestEventsResumeUnderLoad(t *testing.T) {
	e := newEnv(t, nil, hub.Options{ReadBatch: 32, BufferItems: 256}, Config{})
	p := newPublisher(t, e.store, testTopic)
	const total = 1500

	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		rng := rand.New(rand.NewPCG(3, 4))
		for p.n < total {
			n := min(1+rng.IntN(30), total-p.n)
			p.appendN(n, "")
			p.commitAll()
			if p.n < total {
				p.appendN(min(2, total-p.n), "") // unpublished until the next round
			}
		}
		p.commitAll()
	}()

	follow := func(t *testing.T, byHeader bool, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed))
		var last uint64
		for conns := 0; last < total; conns++ {
			if conns > 10000 {
				t.Fatal("too many reconnections")
			}
			var s *stream
			if byHeader {
				// Last-Event-ID wins over a stale ?after, as for a
				// reconnecting EventSource.
				s = openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, "after=0"), fmt.Sprint(last)).run()
			} else {
				s = openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, fmt.Sprintf("after=%d", last)), "").run()
			}
			take := 1 + rng.IntN(200)
			for i := 0; i < take && last < total; i++ {
				ev, ok := s.next(t, 10*time.Second)
				if !ok {
					break // the server ended the stream (slow terminal): resume
				}
				d := checkItem(t, e.store, ev, last+1)
				last = d.Seq
			}
			s.close()
		}
	}
	var wg sync.WaitGroup
	for i, byHeader := range []bool{true, false, true} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(fmt.Sprintf("terminal%d", i), func(t *testing.T) { follow(t, byHeader, uint64(i)) })
		}()
	}
	wg.Wait()
	<-pubDone
}

func TestEventsReset(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	p := newPublisher(t, e.store, testTopic)
	p.publish(10)
	if _, err := e.store.Trim(context.Background(), testTopic, 6); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, "after=2"), "").run()
	ev, _ := s.next(t, 5*time.Second)
	r, err := ev.Reset()
	if err != nil || r.Earliest != 6 || string(ev.ID) != "5" {
		t.Fatalf("first event %+v (%v), want reset to 6 with id 5", ev, err)
	}
	for want := uint64(6); want <= 10; want++ {
		ev, _ := s.next(t, 5*time.Second)
		checkItem(t, e.store, ev, want)
	}
	// Live items follow.
	p.publish(1)
	ev, _ = s.next(t, 5*time.Second)
	checkItem(t, e.store, ev, 11)
}

// smallBufListener shrinks the send buffer of accepted connections, so that
// a client that stops reading stalls the server's writes quickly.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestEventsSlowTerminal(t *testing.T) {
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{BufferItems: 64, ReadBatch: 16})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := mustServer(t, Config{Store: st, Hub: h, WriteTimeout: 500 * time.Millisecond})
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener = smallBufListener{ts.Listener}
	ts.Start()
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
		h.Close()
	})

	slowClient := &nethttp.Client{Transport: &nethttp.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}
	url := eventsURL(ts.URL, testTopic, "")
	slow := openStream(t, slowClient, url, "") // never read until the end
	fast := openStream(t, nethttp.DefaultClient, url, "").run()
	checkFor(t, 5*time.Second, func() error {
		if n := h.Terminals(testTopic); n != 2 {
			return fmt.Errorf("%d terminals", n)
		}
		return nil
	})

	p := newPublisher(t, st, testTopic)
	big := `"` + strings.Repeat("x", 4096) + `"`
	const rounds, per = 12, 50
	var last uint64
	for range rounds {
		p.appendN(per, big)
		p.commitAll()
		fast.readTo(t, st, &last, uint64(p.n), 10*time.Second)
	}
	// The slow terminal was dropped; the fast one is still on.
	checkFor(t, 10*time.Second, func() error {
		if n := h.Terminals(testTopic); n != 1 {
			return fmt.Errorf("%d terminals", n)
		}
		return nil
	})
	// Its stream ended early: it holds a prefix, and resumes from there.
	var got uint64
	err := wire.ReadEvents(slow.resp.Body, func(ev wire.Event) error {
		got = checkItem(t, st, ev, got+1).Seq
		return nil
	})
	if got >= uint64(rounds*per) {
		t.Fatalf("slow terminal got all %d items (err %v): it was never cut off", got, err)
	}
	t.Logf("slow terminal cut off after %d of %d items (%v)", got, rounds*per, err)
	resumed := openStream(t, nethttp.DefaultClient, url, fmt.Sprint(got)).run()
	for want := got + 1; want <= uint64(rounds*per); want++ {
		ev, _ := resumed.next(t, 10*time.Second)
		checkItem(t, st, ev, want)
	}
}

func TestEventsEndOnClientGone(t *testing.T) {
	// A hijacked stream finds its client gone at the next heartbeat.
	e := newEnv(t, nil, hub.Options{}, Config{Heartbeat: 50 * time.Millisecond})
	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, ""), "")
	checkFor(t, 5*time.Second, func() error {
		if n := e.hub.Terminals(testTopic); n != 1 {
			return fmt.Errorf("%d terminals", n)
		}
		return nil
	})
	s.close()
	checkFor(t, 5*time.Second, func() error {
		if n := e.hub.Terminals(testTopic); n != 0 {
			return fmt.Errorf("%d terminals after the client left", n)
		}
		return nil
	})
}

func TestEventsStoreDown(t *testing.T) {
	st := memstore.New(nil)
	e := newEnv(t, st.Handle(), hub.Options{}, Config{})
	e.store.Close()
	var bad wire.ErrorResponse
	resp := e.do("GET", "/v1/topics/quotes/events", nil, nil, &bad)
	if resp.StatusCode != 503 || bad.Error.Code != baton.CodeUnavailable {
		t.Fatalf("%d %+v", resp.StatusCode, bad.Error)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("closing one handle closed the data: %v", err)
	}
}

// TestValueBytesPreserved checks that values reach terminals and pollers
// byte for byte as stored (no HTML escaping), so item hashes verify.
func TestValueBytesPreserved(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	p := newPublisher(t, e.store, testTopic)
	resp, got, _ := e.post(testTopic, `{"id":"<id>","value":{"html":"<b>&amp;</b>","ls":"`+"\u2028"+`"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	p.commitAll()
	want := `{"html":"<b>&amp;</b>","ls":"` + "\u2028" + `"}`

	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, ""), "").run()
	ev, _ := s.next(t, 5*time.Second)
	d := checkItem(t, e.store, ev, 1) // recomputes the hash from what came
	if string(d.Value) != want || d.Hash != got.Items[0].Hash || d.ID != "<id>" {
		t.Fatalf("delivered %s (%s), want %s", d.Value, d.Hash, want)
	}

	var items wire.ItemsResponse
	e.do("GET", "/v1/topics/quotes/items", nil, nil, &items)
	if len(items.Items) != 1 || string(items.Items[0].Value) != want || !items.Items[0].Verify() {
		t.Fatalf("polled %+v", items.Items)
	}
}

// TestRequestLogOfAStream: the debug request log gives a stream that took
// its connection over the status it answered, marked hijacked, and the
// stream's end is logged when the client goes.
func TestRequestLogOfAStream(t *testing.T) {
	var logs testlog.Buffer
	e := newEnv(t, nil, hub.Options{}, Config{Logger: logs.Logger(), Heartbeat: 20 * time.Millisecond})
	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, ""), "")
	path := "/v1/topics/" + testTopic + "/events"
	want := fmt.Sprintf(` method=GET path=%s status=200 hijacked=true`, path)
	logged := func(line string) func() error {
		return func() error {
			if !strings.Contains(logs.String(), line) {
				return fmt.Errorf("no %q in the log:\n%s", line, logs.String())
			}
			return nil
		}
	}
	checkFor(t, 5*time.Second, logged(want))
	s.close()
	checkFor(t, 5*time.Second, logged(` topic=`+testTopic+` last=`))
	if strings.Contains(logs.String(), "status=0") {
		t.Fatalf("a request logged with status 0:\n%s", logs.String())
	}
}
