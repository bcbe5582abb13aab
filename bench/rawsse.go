package bench

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
)

// ServeRawSSE runs the fan-out ceiling: a minimal Server-Sent Events
// broadcaster with Baton's routes and frames, and nothing else: no store, no
// order across restarts, no resume, no hash. POST .../items broadcasts the
// updates at once; GET .../events streams every later one. A connection
// whose queue overflows is closed, as Baton closes a slow terminal. A busy
// connection's writes are spaced as Baton's are (bhttp.CoalesceGap, with
// every connection busy), so that it stays the ceiling. It
// writes {"addr": ...} to readyFile once it serves and runs until ctx ends.
func ServeRawSSE(ctx context.Context, listen, readyFile string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newBroadcaster(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if readyFile != "" {
		j, _ := json.Marshal(map[string]string{"addr": ln.Addr().String()})
		if err := os.WriteFile(readyFile+".tmp", j, 0o640); err != nil {
			return err
		}
		if err := os.Rename(readyFile+".tmp", readyFile); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		srv.Close()
		return nil
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// newBroadcaster returns the ceiling's routes.
func newBroadcaster() http.Handler {
	b := &broadcaster{conns: make(map[*rawConn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/topics/{topic}/events", b.events)
	mux.HandleFunc("POST /v1/topics/{topic}/items", b.publish)
	return mux
}

type broadcaster struct {
	mu    sync.Mutex // orders seqs and broadcasts
	seq   uint64
	conns map[*rawConn]struct{}
	n     atomic.Int64 // len(conns), for the coalescing gap
}

type rawConn struct {
	ch   chan [][]byte
	dead chan struct{}
	once sync.Once
}

func (c *rawConn) kill() { c.once.Do(func() { close(c.dead) }) }

const rawQueue = 1024 // batches per connection

func (b *broadcaster) events(w http.ResponseWriter, r *http.Request) {
	// Hijacked, as Baton's pool writer does (http/stream_pool.go): the
	// body is written raw, with one writev of every frame pending, not
	// through net/http's buffered chunked writer.
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "raw broadcaster: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	// Registered before the first byte goes out: a client that has seen
	// the stream open gets every item posted after.
	c := &rawConn{ch: make(chan [][]byte, rawQueue), dead: make(chan struct{})}
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.n.Add(1)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.n.Add(-1)
		b.mu.Unlock()
	}()
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(rawHead); err != nil {
		return
	}
	var (
		flushed time.Time
		bufs    net.Buffers
	)
	gap := time.NewTimer(time.Hour)
	defer gap.Stop()
	for {
		var fs [][]byte
		select {
		case <-c.dead:
			return
		case fs = <-c.ch:
		}
		if wait := time.Until(flushed.Add(bhttp.CoalesceGap(int(b.n.Load()), bhttp.DefaultStreamCoalesce))); wait > 0 {
			gap.Reset(wait)
			<-gap.C
		}
		bufs = append(bufs[:0], fs...)
		for more := true; more; {
			select {
			case fs := <-c.ch:
				bufs = append(bufs, fs...)
			default:
				more = false
			}
		}
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		nb := bufs
		if _, err := nb.WriteTo(conn); err != nil {
			return
		}
		clear(bufs)
		flushed = time.Now()
	}
}

// rawHead is the stream's response head and retry hint: a body ended by
// the connection's close, as Baton's pool writer sends.
var rawHead = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\nretry: 1000\n\n")

func (b *broadcaster) publish(w http.ResponseWriter, r *http.Request) {
	var ups []baton.Update
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ups); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	frames := make([][]byte, len(ups))
	b.mu.Lock()
	first := b.seq
	for i, u := range ups {
		b.seq++
		// Baton's frame for the item, with a zero hash: no store, no hash.
		f, err := hub.NewFrame(baton.Published{Item: baton.Item{Seq: b.seq, ID: u.ID, Value: u.Value, MsgID: u.MsgID}, Epoch: 1, Publisher: "raw"})
		if err != nil {
			b.seq = first
			b.mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		frames[i] = f.SSE
	}
	for c := range b.conns {
		select {
		case c.ch <- frames:
		default:
			c.kill()
		}
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"items":[]}`))
}
