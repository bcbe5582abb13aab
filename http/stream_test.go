package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/limits"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/wire"
)

// rawStream is an event stream read over a plain TCP connection, with no
// HTTP client in between: the test decides when (and whether) to read.
type rawStream struct {
	conn net.Conn
	br   *bufio.Reader
	resp *nethttp.Response
}

// dialStream sends GET .../events on a new connection and reads the
// response head. readBuf, if not 0, shrinks the socket's receive buffer.
func dialStream(t testing.TB, addr, query string, readBuf int) *rawStream {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if readBuf > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(readBuf)
	}
	path := "/v1/topics/" + testTopic + "/events"
	if query != "" {
		path += "?" + query
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: baton\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return &rawStream{conn: c, br: br, resp: resp}
}

// startServer serves srv on a loopback listener (wrapped by wrap, if not
// nil) and returns the address. Cleanup closes the server.
func startServer(t *testing.T, srv *Server, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	if err := srv.Open(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// newStreamServer returns a started hub and a server on a fresh memstore.
func newStreamServer(t *testing.T, hopts hub.Options, cfg Config) (*Server, *hub.Hub, baton.Store) {
	t.Helper()
	st := memstore.New(nil)
	h := hub.New(st, hopts)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg.Store, cfg.Hub = st, h
	return mustServer(t, cfg), h, st
}

// goroutines counts the goroutines whose stack mentions any of fns.
func goroutines(fns ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn) {
				count++
				break
			}
		}
	}
	return count
}

// serverGoroutines are the functions of goroutines that serve streams.
var serverGoroutines = []string{"http.(*streamer)", "http.(*Server).events", "net/http.(*conn).serve"}

// writers are the stream writers every stream test runs with.
var writers = []string{SSEWriterPool, SSEWriterGoroutine}

// forEachWriter runs test once per stream writer.
func forEachWriter(t *testing.T, test func(t *testing.T, writer string)) {
	for _, w := range writers {
		t.Run(w, func(t *testing.T) { test(t, w) })
	}
}

func TestSSEWriterValidate(t *testing.T) {
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{})
	var ie *baton.InvalidError
	if err := (Config{Store: st, Hub: h, SSEWriter: "threads"}).Validate(); !errors.As(err, &ie) || ie.Field != "SSEWriter" {
		t.Fatalf("Validate = %v, want field SSEWriter", err)
	}
	for _, w := range append(writers, "") {
		if err := (Config{Store: st, Hub: h, SSEWriter: w}).Validate(); err != nil {
			t.Fatalf("SSEWriter %q: %v", w, err)
		}
	}
}

// TestStreamsOrder checks that many streams get every item in order, with
// each writer: the pool with fewer workers than streams, its response
// delimited by the connection's close and its idle streams holding no
// goroutine; the goroutine writer with a chunked response and a goroutine
// per stream.
func TestStreamsOrder(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, h, st := newStreamServer(t, hub.Options{ReadBatch: 16}, Config{SSEWriter: writer, StreamWorkers: 2})
		addr := startServer(t, srv, nil)
		p := newPublisher(t, st, testTopic)
		p.publish(5) // caught up from the store

		const n = 40
		client := &nethttp.Client{Transport: &nethttp.Transport{MaxConnsPerHost: n}}
		streams := make([]*stream, n)
		for i := range streams {
			streams[i] = openStream(t, client, eventsURL("http://"+addr, testTopic, ""), "").run()
		}
		r := streams[0].resp
		if writer == SSEWriterPool {
			if !r.Close || r.ContentLength != -1 || len(r.TransferEncoding) != 0 {
				t.Fatalf("response: close %v, length %d, encoding %v: want a body delimited by close", r.Close, r.ContentLength, r.TransferEncoding)
			}
		} else if r.Close || fmt.Sprint(r.TransferEncoding) != "[chunked]" {
			t.Fatalf("response: close %v, encoding %v: want a chunked body", r.Close, r.TransferEncoding)
		}
		for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		if r.Header.Get("Date") == "" {
			t.Error("no Date header")
		}
		if got := srv.Streams(); got != n {
			t.Fatalf("Streams() = %d, want %d", got, n)
		}
		checkFor(t, 5*time.Second, func() error {
			if g := h.Terminals(testTopic); g != n {
				return fmt.Errorf("%d terminals", g)
			}
			return nil
		})

		const total = 600
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for want := uint64(1); want <= total; want++ {
					select {
					case ev, ok := <-s.events:
						if !ok {
							errs <- fmt.Errorf("stream %d ended at %d: %v", i, want-1, <-s.done)
							return
						}
						d, err := ev.Item()
						if err != nil || d.Seq != want {
							errs <- fmt.Errorf("stream %d: got %+v (%v), want seq %d", i, d, err, want)
							return
						}
					case <-time.After(20 * time.Second):
						errs <- fmt.Errorf("stream %d: no seq %d", i, want)
						return
					}
				}
			}()
		}
		for p.n < total {
			p.publish(min(37, total-p.n))
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		checkFor(t, 5*time.Second, func() error {
			if writer == SSEWriterGoroutine {
				// One handler goroutine per stream: the writer asked for.
				if g := goroutines("http.(*streamer).serveResponse"); g != n {
					return fmt.Errorf("%d goroutines in serveResponse for %d streams", g, n)
				}
				return nil
			}
			// Idle streams: no net/http connection goroutine, no
			// handler, at most the pool's heartbeat goroutine.
			if g := goroutines(serverGoroutines...); g > 1 {
				return fmt.Errorf("%d server goroutines for %d idle streams", g, n)
			}
			return nil
		})
	})
}

// TestStreamStalledClient checks that a client that stops reading is
// dropped after WriteTimeout, and that meanwhile another stream keeps
// receiving: with the pool, the two share its only worker, which the
// stalled write must not hold.
func TestStreamStalledClient(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		const writeTimeout = 3 * time.Second
		// A live queue long enough that the drop is the write timeout's.
		srv, h, st := newStreamServer(t, hub.Options{BufferItems: 1 << 16}, Config{SSEWriter: writer, StreamWorkers: 1, WriteTimeout: writeTimeout})
		addr := startServer(t, srv, func(ln net.Listener) net.Listener { return smallBufListener{ln} })

		stalled := dialStream(t, addr, "", 4096) // never read until dropped
		fast := openStream(t, nethttp.DefaultClient, eventsURL("http://"+addr, testTopic, ""), "").run()
		checkFor(t, 5*time.Second, func() error {
			if n := h.Terminals(testTopic); n != 2 {
				return fmt.Errorf("%d terminals", n)
			}
			return nil
		})

		p := newPublisher(t, st, testTopic)
		var last uint64
		// round publishes items and waits until the fast stream has them.
		round := func(n int, value string) {
			p.appendN(n, value)
			p.commitAll()
			fast.readTo(t, st, &last, uint64(p.n), 30*time.Second)
		}
		// Large items fill the stalled client's socket buffers at once.
		big := `"` + strings.Repeat("x", 16<<10) + `"`
		for range 5 {
			round(20, big)
		}
		// Then small rounds until the stalled stream is dropped, counting
		// those the fast stream got while the stalled one was still on.
		// Had the stalled write held the only worker, the first of them
		// would have waited for the drop.
		during := 0
		for during < 20 && srv.Streams() == 2 {
			round(1, "")
			if srv.Streams() == 2 {
				during++
			}
		}
		if during < 20 {
			t.Errorf("the fast stream got %d rounds while the other one stalled: it waited for the stalled write", during)
		}
		checkFor(t, 10*writeTimeout, func() error {
			if n := srv.Streams(); n != 1 {
				return fmt.Errorf("%d streams: the stalled client was never dropped", n)
			}
			return nil
		})
		if n := h.Terminals(testTopic); n != 1 {
			t.Errorf("%d terminals after the drop", n)
		}
		// The stalled client got a prefix, then the end of the stream.
		_ = stalled.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got uint64
		err := wire.ReadEvents(stalled.resp.Body, func(ev wire.Event) error {
			got = checkItem(t, st, ev, got+1).Seq
			return nil
		})
		if got >= last {
			t.Fatalf("stalled client got all %d items (%v)", got, err)
		}
		t.Logf("stalled client dropped with %d of %d items (%v); the other stream got %d rounds meanwhile", got, last, err, during)
	})
}

// TestStreamHeartbeats checks that idle streams all get heartbeats.
func TestStreamHeartbeats(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, _, _ := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer, Heartbeat: 20 * time.Millisecond})
		addr := startServer(t, srv, nil)
		var streams []*rawStream
		for range 20 {
			streams = append(streams, dialStream(t, addr, "", 0))
		}
		for i, s := range streams {
			_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			body := bufio.NewReader(s.resp.Body)
			var lines []string
			for beats := 0; beats < 3; {
				line, err := body.ReadString('\n')
				if err != nil {
					t.Fatalf("stream %d: %v after %q", i, err, lines)
				}
				lines = append(lines, line)
				if line == ": hb\n" {
					beats++
				}
			}
			if lines[0] != "retry: 1000\n" {
				t.Fatalf("stream %d starts with %q", i, lines[0])
			}
		}
	})
}

// TestStreamClientGone checks that a client that closes its connection is
// cleaned up at once, long before a heartbeat: on the pool when the poller
// sees the hang-up (ws_poll.go), on the goroutine writer by net/http's
// background read.
func TestStreamClientGone(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, h, _ := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer, Heartbeat: time.Hour})
		addr := startServer(t, srv, nil)
		a := dialStream(t, addr, "", 0)
		dialStream(t, addr, "", 0) // stays
		if n := srv.Streams(); n != 2 {
			t.Fatalf("%d streams", n)
		}
		a.conn.Close()
		waitStreams(t, srv, h, 1, 1)
	})
}

// TestStreamClientSendsBytes: a client that sends bytes after its request
// (an event stream's client has nothing to say) is not taken for gone:
// its stream goes on, heartbeats included; and when it then closes, a
// heartbeat finds it gone.
func TestStreamClientSendsBytes(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, h, _ := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer, Heartbeat: 20 * time.Millisecond})
		addr := startServer(t, srv, nil)
		a := dialStream(t, addr, "", 0)
		if _, err := a.conn.Write([]byte("hello\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for beats := 0; beats < 3; {
			line, err := a.br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended after the client sent bytes: %v", err)
			}
			if strings.HasPrefix(line, ": hb") {
				beats++
			}
		}
		if n := srv.Streams(); n != 1 {
			t.Fatalf("%d streams, want 1", n)
		}
		a.conn.Close()
		waitStreams(t, srv, h, 0, 0)
	})
}

// TestStreamServerClose checks that Close ends every stream and leaves no
// goroutine serving one behind.
func TestStreamServerClose(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, h, st := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer})
		addr := startServer(t, srv, nil)
		newPublisher(t, st, testTopic).publish(3)
		var streams []*rawStream
		for range 10 {
			streams = append(streams, dialStream(t, addr, "", 0))
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		for i, s := range streams {
			_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, s.resp.Body); err != nil {
				t.Fatalf("stream %d did not end: %v", i, err)
			}
		}
		if n := srv.Streams(); n != 0 {
			t.Fatalf("%d streams after Close", n)
		}
		if n := h.Terminals(testTopic); n != 0 {
			t.Fatalf("%d terminals after Close", n)
		}
		checkFor(t, 5*time.Second, func() error {
			if g := goroutines(serverGoroutines...); g > 0 {
				return fmt.Errorf("%d server goroutines after Close", g)
			}
			return nil
		})
		// A new stream is refused.
		resp, err := nethttp.Get(eventsURL("http://"+addr, testTopic, ""))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET after Close: %s", resp.Status)
		}
	})
}

// TestStreamShutdownHook checks that a plain net/http server's Shutdown
// (as serve runs it, without Server.Close) ends the streams: Shutdown
// knows neither hijacked connections nor when a stream's handler returns.
func TestStreamShutdownHook(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, h, _ := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer})
		t.Cleanup(func() { srv.Close() })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &nethttp.Server{Handler: srv}
		go hs.Serve(ln)
		s := dialStream(t, ln.Addr().String(), "", 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, s.resp.Body); err != nil {
			t.Fatalf("stream did not end: %v", err)
		}
		waitStreams(t, srv, h, 0, 0)
	})
}

// TestStreamsMax checks the cap on streams: over it, a JSON 503 before the
// stream starts; a slot that frees up is taken again.
func TestStreamsMax(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		srv, _, _ := newStreamServer(t, hub.Options{}, Config{SSEWriter: writer, MaxStreams: 2, Heartbeat: 50 * time.Millisecond})
		addr := startServer(t, srv, nil)
		a := dialStream(t, addr, "", 0)
		dialStream(t, addr, "", 0)
		resp, err := nethttp.Get(eventsURL("http://"+addr, testTopic, ""))
		if err != nil {
			t.Fatal(err)
		}
		var bad wire.ErrorResponse
		err = json.NewDecoder(resp.Body).Decode(&bad)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 503 || bad.Error.Code != baton.CodeUnavailable || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("third stream: %d %+v (%v)", resp.StatusCode, bad.Error, err)
		}
		a.conn.Close()
		checkFor(t, 5*time.Second, func() error {
			if n := srv.Streams(); n != 1 {
				return fmt.Errorf("%d streams", n)
			}
			return nil
		})
		if s := dialStream(t, addr, "", 0); s.resp.StatusCode != 200 {
			t.Fatalf("after a slot freed: %s", s.resp.Status)
		}
	})
}

// TestStreamFallback checks that HTTP/2 streams, which cannot be
// hijacked, get the goroutine writer even where the pool is configured:
// items in order, heartbeats, and the end on Close.
func TestStreamFallback(t *testing.T) {
	srv, h, st := newStreamServer(t, hub.Options{}, Config{SSEWriter: SSEWriterPool, Heartbeat: 20 * time.Millisecond})
	ts := httptest.NewUnstartedServer(srv)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	t.Cleanup(func() { srv.Close() }) // before ts.Close, which waits for the handler
	p := newPublisher(t, st, testTopic)
	p.publish(3)

	resp, err := ts.Client().Get(eventsURL(ts.URL, testTopic, "after=1"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %s %q", resp.Proto, resp.Status, resp.Header.Get("Content-Type"))
	}
	if n := srv.Streams(); n != 1 {
		t.Fatalf("Streams() = %d", n)
	}
	br := bufio.NewReader(resp.Body)
	var text strings.Builder
	for !strings.Contains(text.String(), ": hb\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%v after %q", err, text.String())
		}
		text.WriteString(line)
	}
	p.publish(1)
	var got []uint64
	err = wire.ReadEvents(io.MultiReader(strings.NewReader(text.String()), br), func(ev wire.Event) error {
		d, err := ev.Item()
		if err != nil {
			return err
		}
		got = append(got, d.Seq)
		if len(got) == 3 {
			srv.Close()
		}
		return nil
	})
	if fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("got seqs %v (%v)", got, err)
	}
	waitStreams(t, srv, h, 0, 0)
}

// BenchmarkStreamFanout delivers batches of items to many streams, with
// each writer. One op is one batch received by every stream.
func BenchmarkStreamFanout(b *testing.B) {
	for _, writer := range writers {
		b.Run(fmt.Sprintf("%s/%d", writer, 1000), func(b *testing.B) {
			benchFanout(b, Config{SSEWriter: writer}, 1000, "")
		})
	}
}

// benchFanout opens n streams (with query) on a server of cfg and times
// batches of 10 items received by every stream.
func benchFanout(b *testing.B, cfg Config, n int, query string) {
	addr, ps := benchServer(b, cfg)

	const batch = 10
	var got sync.WaitGroup
	counts := make([]int, n)
	for i := range n {
		s := dialStream(b, addr, query, 0)
		if s.resp.StatusCode != 200 {
			b.Fatalf("stream %d: status %d", i, s.resp.StatusCode)
		}
		go func() {
			_ = wire.ReadEvents(s.resp.Body, func(ev wire.Event) error {
				counts[i]++
				if counts[i]%batch == 0 {
					got.Done()
				}
				return nil
			})
		}()
	}
	p := ps.publisher(testTopic)
	b.ResetTimer()
	for range b.N {
		got.Add(n)
		p.publish(batch)
		got.Wait()
	}
	b.ReportMetric(float64(b.N*batch*n)/b.Elapsed().Seconds(), "deliveries/s")
}

func TestPeerClosed(t *testing.T) {
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		t.Skip("no peek on " + runtime.GOOS)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { server.Close() })
		return client, server
	}

	client, server := pair()
	if peerClosed(server) {
		t.Fatal("open connection seen closed")
	}
	client.Close()
	checkFor(t, 5*time.Second, func() error {
		if !peerClosed(server) {
			return fmt.Errorf("closed connection not seen closed")
		}
		return nil
	})

	// Input the server never reads (a pipelined request) is not the end,
	// and the peek leaves it in place.
	client, server = pair()
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if peerClosed(server) || peerClosed(server) {
		t.Fatal("connection with input seen closed")
	}
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 3)
	if _, err := io.ReadFull(server, b); err != nil || string(b) != "GET" {
		t.Fatalf("read %q, %v after peeks", b, err)
	}
}

// readTo reads item events, each checked against st, until *last is seq.
// It fails the test if none comes within d, or the stream ends.
func (s *stream) readTo(t testing.TB, st baton.Store, last *uint64, seq uint64, d time.Duration) {
	t.Helper()
	for *last < seq {
		ev, ok := s.next(t, d)
		if !ok {
			t.Fatalf("stream ended at %d: %v", *last, <-s.done)
		}
		*last = checkItem(t, st, ev, *last+1).Seq
	}
}

// waitStreams waits until the server has streams open and the hub terms
// terminals on testTopic.
func waitStreams(t *testing.T, srv *Server, h *hub.Hub, streams, terms int) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		if n := srv.Streams(); n != streams {
			return fmt.Errorf("%d streams", n)
		}
		if n := h.Terminals(testTopic); n != terms {
			return fmt.Errorf("%d terminals", n)
		}
		return nil
	})
}

// TestReloadedPageGetsItsStream: a client allowed one stream
// (--client-streams 1) that closes it and opens another, as a page
// reloaded does, gets the new one as soon as its old connection is seen
// closed, not an hour (the heartbeat) later.
func TestReloadedPageGetsItsStream(t *testing.T) {
	srv, h, _ := newStreamServer(t, hub.Options{}, Config{SSEWriter: SSEWriterPool, Heartbeat: time.Hour,
		Limits: limits.Config{Streams: 1}})
	addr := startServer(t, srv, nil)
	for range 3 { // reloaded three times
		a := dialStream(t, addr, "", 0)
		if a.resp.StatusCode != 200 {
			t.Fatalf("stream: %s", a.resp.Status)
		}
		a.conn.Close()
		waitStreams(t, srv, h, 0, 0)
	}
	if a := dialStream(t, addr, "", 0); a.resp.StatusCode != 200 {
		t.Fatalf("stream after the reloads: %s", a.resp.Status)
	}
}
