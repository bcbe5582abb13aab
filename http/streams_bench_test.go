package http

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
)

// The benchmarks of many topics per connection and of WebSocket against
// SSE (docs/benchmarks.md, "Many topics, WebSocket"). Their clients are
// bare connections that count item frames in the bytes they read, so that
// the client costs the same whatever the transport.

// benchServer serves a fresh hub on a memstore.
func benchServer(b *testing.B, cfg Config) (string, *publisherSet) {
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{})
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	cfg.Store, cfg.Hub = st, h
	srv := mustServer(b, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &nethttp.Server{Handler: srv}
	go hs.Serve(ln)
	b.Cleanup(func() { srv.Close(); hs.Close(); h.Close() })
	return ln.Addr().String(), &publisherSet{b: b, st: st, h: h, pubs: map[string]*publisher{}}
}

// publisherSet publishes to the topics of a bench server.
type publisherSet struct {
	b    *testing.B
	st   baton.Store
	h    *hub.Hub
	pubs map[string]*publisher
}

func (ps *publisherSet) hub() *hub.Hub { return ps.h }

// rawOpen opens a stream on a bare connection: an SSE GET of path, or,
// with ws, a WebSocket upgrade of /v1/ws followed by the subscribe frames
// (masked with a zero key, as RFC 6455 allows).
func rawOpen(b *testing.B, addr, path string, ws bool, subscribe []string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if ws {
		_, err = fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: baton\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	} else {
		_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: baton\r\n\r\n", path)
	}
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil || resp.StatusCode/100 > 2 {
		b.Fatalf("open %s: %v %v", path, resp, err)
	}
	for _, t := range subscribe {
		msg := []byte(`{"type":"subscribe","topic":"` + t + `"}`)
		frame := append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	return c, br
}

// countItems counts the item markers in what r reads, calling each for
// every one, until r ends.
func countItems(r io.Reader, marker []byte, each func()) {
	buf := make([]byte, 64<<10)
	keep := 0
	for {
		n, err := r.Read(buf[keep:])
		if n > 0 {
			data := buf[:keep+n]
			for i := bytes.Index(data, marker); i >= 0; i = bytes.Index(data, marker) {
				each()
				data = data[i+len(marker):]
			}
			keep = min(len(data), len(marker)-1)
			copy(buf, data[len(data)-keep:])
		}
		if err != nil {
			return
		}
	}
}

var (
	sseItemMarker = []byte("event: item\n")
	wsItemMarker  = []byte(`{"type":"item"`)
)

// BenchmarkTopicsPerConnection delivers items of 100 topics to one
// multi-topic stream, and to 100 one-topic streams. One op is 10 items on
// every topic, received.
func BenchmarkTopicsPerConnection(b *testing.B) {
	const topics, batch = 100, 10
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("t%03d", i)
	}
	for _, mode := range []string{"one-stream", "streams"} {
		b.Run(fmt.Sprintf("%s/%d", mode, topics), func(b *testing.B) {
			addr, ps := benchServer(b, Config{})
			var got sync.WaitGroup
			count := func() { got.Done() }
			if mode == "one-stream" {
				_, br := rawOpen(b, addr, "/v1/events?"+url.Values{"topic": names}.Encode(), false, nil)
				go countItems(br, sseItemMarker, count)
			} else {
				for _, t := range names {
					_, br := rawOpen(b, addr, "/v1/topics/"+t+"/events", false, nil)
					go countItems(br, sseItemMarker, count)
				}
			}
			pubs := make([]*publisher, topics)
			for i, t := range names {
				pubs[i] = ps.publisher(t)
			}
			b.ResetTimer()
			for range b.N {
				got.Add(topics * batch)
				for _, p := range pubs {
					p.publish(batch)
				}
				got.Wait()
			}
			b.ReportMetric(float64(b.N*topics*batch)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

func (ps *publisherSet) publisher(topic string) *publisher {
	p := ps.pubs[topic]
	if p == nil {
		p = newPublisher(ps.b, ps.st, topic)
		ps.pubs[topic] = p
	}
	return p
}

// BenchmarkWebSocketFanout delivers batches of 10 items of one topic to
// 1,000 connections, SSE and WebSocket. One op is one batch received by
// every connection.
func BenchmarkWebSocketFanout(b *testing.B) {
	const conns, batch = 1000, 10
	for _, ws := range []bool{false, true} {
		name := "sse"
		marker := sseItemMarker
		if ws {
			name, marker = "ws", wsItemMarker
		}
		b.Run(fmt.Sprintf("%s/%d", name, conns), func(b *testing.B) {
			addr, ps := benchServer(b, Config{Heartbeat: time.Minute})
			p := ps.publisher(testTopic)
			var got sync.WaitGroup
			for range conns {
				_, br := rawOpen(b, addr, "/v1/topics/"+testTopic+"/events", ws, []string{testTopic})
				go countItems(br, marker, got.Done)
			}
			// Every terminal on the feed before the first batch.
			checkFor(b, 30*time.Second, func() error {
				if n := ps.hub().Terminals(testTopic); n != conns {
					return fmt.Errorf("%d terminals", n)
				}
				return nil
			})
			b.ResetTimer()
			for range b.N {
				got.Add(conns * batch)
				p.publish(batch)
				got.Wait()
			}
			b.ReportMetric(float64(b.N*conns*batch)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkIdleConnection opens 2,000 idle connections following one
// topic, SSE and WebSocket, and reports the heap and stacks they hold per
// connection, server and bare client together. "sse" is a one-topic
// stream; "sse-many" is GET /v1/events?topic=, the many-topic stream,
// whose source (multiSource) a WebSocket's is too. Run it with
// -benchtime=1x.
func BenchmarkIdleConnection(b *testing.B) {
	const conns = 2000
	for _, name := range []string{"sse", "sse-many", "ws"} {
		path := "/v1/topics/" + testTopic + "/events"
		if name == "sse-many" {
			path = "/v1/events?topic=" + testTopic
		}
		b.Run(fmt.Sprintf("%s/%d", name, conns), func(b *testing.B) {
			addr, ps := benchServer(b, Config{Heartbeat: time.Minute})
			ps.publisher(testTopic).publish(1)
			heap0, stack0 := memInUse()
			for range conns {
				rawOpen(b, addr, path, name == "ws", []string{testTopic})
			}
			checkFor(b, 30*time.Second, func() error {
				if n := ps.hub().Terminals(testTopic); n != conns {
					return fmt.Errorf("%d terminals", n)
				}
				return nil
			})
			heap1, stack1 := memInUse()
			b.ReportMetric(float64(heap1+stack1-heap0-stack0)/conns/1024, "KiB/conn")
			b.ReportMetric(float64(stack1-stack0)/conns/1024, "stack-KiB/conn")
		})
	}
}

// memInUse is the heap and the stack memory in use after a collection.
func memInUse() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse), int64(m.StackInuse)
}
