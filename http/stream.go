package http

import (
	"context"
	"errors"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// A streamer serves the event streams of hijacked HTTP/1.x connections
// without a goroutine per stream: an idle stream is its connection, its hub
// terminal and a small record, nothing else.
//
// A stream is queued to be served when its terminal may have something new
// (hub.Terminal.OnReady) or a heartbeat is due. The run queue holds each
// stream at most once (hijackedStream.queued), so it is bounded by the number of
// streams. A bounded pool of workers, started when there is work and gone
// when the queue is empty, takes streams off the queue and drains each:
// TryNext until nothing is ready (or turnBytes are gathered, then the stream
// goes to the back of the queue), then one vectored write (writev) of the
// shared frames, with no buffer of the stream's own. One heartbeat
// goroutine, alive while there are streams, queues every stream that has
// written nothing for Heartbeat, with a heartbeat due.
//
// A client that stops reading never holds a worker: on TCP a write that has
// not finished after writeSlice is handed to a goroutine of its own, which
// finishes it within WriteTimeout of its start or ends the stream. A stalled
// client thus costs a goroutine while it is stalled, at most one per stream.
//
// A stream ends on a write error or timeout, when its terminal ends
// (hub.ErrSlowTerminal, baton.ErrClosed), when the server closes or the
// net/http server it came from shuts down, or when the client is found gone.
// Nothing reads a hijacked connection while it streams, so a client that
// closes its end is noticed at the next write to it: the next items, or, on
// an idle stream, the next heartbeat, before which the worker peeks at the
// socket for the end of the input (so at most about 1.25 × Heartbeat after
// the close). Bytes the client sends (a pipelined request) are never read:
// the stream answered with Connection: close.
//
// Goroutines and locks: streamer.mu guards the stream set, the run queue,
// the counters and every stream's flags. It is a leaf lock: a terminal's
// OnReady function takes it with the hub's feed and terminal locks held
// (order feed.mu → Terminal.mu → streamer.mu), so nothing calls into the hub
// or does I/O while holding it. One goroutine at a time serves a stream (the
// worker that set hijackedStream.running, then the stall writer it hands over to):
// only it calls TryNext and writes to the connection. end, from any
// goroutine, closes the connection and the terminal, which makes a serving
// goroutine's write or TryNext fail at once.
type streamer struct {
	log          *slog.Logger
	heartbeat    time.Duration
	writeTimeout time.Duration
	maxStreams   int
	maxWorkers   int
	// ctx bounds the store reads of TryNext; close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	epoch  time.Time // origin of hijackedStream.lastWrite, on the monotonic clock

	mu      sync.Mutex
	closed  bool
	n       int               // streams counted against maxStreams (reserve/release)
	streams []*hijackedStream // hijacked streams not ended; hijackedStream.i is the index
	runq    runQueue
	workers int  // worker goroutines running
	beating bool // the heartbeat goroutine runs
	// servers are the net/http servers streams came from, with whether
	// they shut down; see watch.
	servers map[*nethttp.Server]bool
	wg      sync.WaitGroup // workers, stall writers, the heartbeat goroutine
}

const (
	// writeSlice is how long a worker waits for one write to a TCP
	// connection before it hands the rest of the write over.
	writeSlice = 20 * time.Millisecond
	// turnBytes is about the most a worker writes to one stream before it
	// serves the others (a terminal catching up from the store).
	turnBytes = 256 << 10
)

var (
	heartbeatFrame = []byte(": hb\n\n")
	// errClientGone ends a stream whose client closed its connection.
	errClientGone = errors.New("client closed the connection")
)

// hijackedStream is one event stream on a hijacked connection.
type hijackedStream struct {
	conn   net.Conn
	head   []byte // the response head until written; the serving goroutine's
	term   *hub.Terminal
	cancel context.CancelFunc // the terminal's context
	srv    *nethttp.Server    // the server the connection came from, if known
	remote string
	sliced bool // conn survives a write timeout (TCP): long writes are handed over

	// Guarded by streamer.mu.
	i         int   // index in streamer.streams
	lastWrite int64 // when the last write ended, ns since streamer.epoch
	queued    bool  // on the run queue, or to go back on it when running ends
	running   bool  // a worker or a stall writer serves the stream
	beat      bool  // a heartbeat is due
	ended     bool
}

func newStreamer(cfg Config, log *slog.Logger) *streamer {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamer{
		log:          log,
		heartbeat:    cfg.Heartbeat,
		writeTimeout: cfg.WriteTimeout,
		maxStreams:   cfg.MaxStreams,
		maxWorkers:   cfg.StreamWorkers,
		ctx:          ctx,
		cancel:       cancel,
		epoch:        time.Now(),
		servers:      make(map[*nethttp.Server]bool),
	}
}

// Streams returns the number of event streams open on this server, on
// either path (hijacked, or a goroutine per request), including those being
// opened.
func (s *Server) Streams() int {
	st := s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.n
}

// reserve counts a stream about to open against MaxStreams. The caller
// hands the reservation to start, or gives it back with release.
func (st *streamer) reserve() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return baton.ErrClosed
	}
	if st.n >= st.maxStreams {
		return wire.Errorf(baton.CodeUnavailable, "too many event streams on this node (%d): retry later or on another node", st.maxStreams)
	}
	st.n++
	return nil
}

func (st *streamer) release() {
	st.mu.Lock()
	st.n--
	st.mu.Unlock()
}

func (st *streamer) now() int64 { return int64(time.Since(st.epoch)) }

// start serves a hijacked connection, with the reservation of reserve. head
// (the response head) is the stream's first write. srv, if not nil, is the
// net/http server of the connection, watched before the hijack. From here on
// the streamer owns conn, term and cancel.
func (st *streamer) start(conn net.Conn, head []byte, term *hub.Terminal, cancel context.CancelFunc, srv *nethttp.Server, remote string) {
	s := &hijackedStream{conn: conn, head: head, term: term, cancel: cancel, srv: srv, remote: remote}
	_, s.sliced = conn.(*net.TCPConn)
	st.mu.Lock()
	if st.closed || (srv != nil && st.servers[srv]) {
		s.ended = true
		st.mu.Unlock()
		st.closeStream(s, baton.ErrClosed)
		st.release()
		return
	}
	s.i = len(st.streams)
	st.streams = append(st.streams, s)
	s.lastWrite = st.now()
	if !st.beating {
		st.beating = true
		st.wg.Add(1)
		go st.heartbeats()
	}
	st.mu.Unlock()
	term.OnReady(func() { st.schedule(s) })
	st.schedule(s) // what Subscribe read, and any wake-up before OnReady
}

// schedule queues s to be served. It is the terminal's OnReady function:
// see the lock order above.
func (st *streamer) schedule(s *hijackedStream) {
	st.mu.Lock()
	st.scheduleLocked(s)
	st.mu.Unlock()
}

func (st *streamer) scheduleLocked(s *hijackedStream) {
	if s.ended || s.queued {
		return
	}
	s.queued = true
	if !s.running {
		st.pushLocked(s)
	}
}

// pushLocked puts s on the run queue and starts a worker if the pool has
// room.
func (st *streamer) pushLocked(s *hijackedStream) {
	st.runq.push(s)
	if st.workers < st.maxWorkers && !st.closed {
		st.workers++
		st.wg.Add(1)
		go st.work()
	}
}

// work is a worker goroutine: it serves queued streams until the queue is
// empty.
func (st *streamer) work() {
	defer st.wg.Done()
	var bufs [][]byte // the frames of one turn; reused
	for {
		st.mu.Lock()
		s := st.runq.pop()
		if s == nil {
			st.workers--
			st.mu.Unlock()
			return
		}
		if s.ended {
			st.mu.Unlock()
			continue
		}
		s.queued, s.running = false, true
		beat := s.beat
		s.beat = false
		st.mu.Unlock()
		bufs = st.serve(s, beat, bufs[:0])
	}
}

// serve gives s one turn: it gathers what the terminal has ready (or a
// heartbeat) and writes it. It returns bufs, emptied, for reuse.
func (st *streamer) serve(s *hijackedStream, beat bool, bufs [][]byte) [][]byte {
	var (
		size   int
		more   bool // stopped at turnBytes: more may be ready
		endErr error
	)
	if s.head != nil {
		bufs = append(bufs, s.head)
		s.head = nil
	}
	for {
		ev, ok, err := s.term.TryNext(st.ctx)
		if err != nil {
			endErr = err
			break
		}
		if !ok {
			break
		}
		switch ev.Kind {
		case hub.EventItems:
			for i := range ev.Frames {
				bufs = append(bufs, ev.Frames[i].SSE)
				size += len(ev.Frames[i].SSE)
			}
		case hub.EventReset:
			st.log.Info("http: stream reset: position no longer kept", "topic", s.term.Topic(), "earliest", ev.Earliest)
			f := hub.AppendResetSSE(nil, ev.Earliest)
			bufs = append(bufs, f)
			size += len(f)
		}
		if size >= turnBytes {
			more = true
			break
		}
	}
	if beat && len(bufs) == 0 && endErr == nil {
		// Idle: the one moment to check for a client gone without a
		// write (a write to a closed connection may succeed once).
		if peerClosed(s.conn) {
			endErr = errClientGone
		} else {
			bufs = append(bufs, heartbeatFrame)
		}
	}
	if len(bufs) == 0 {
		st.turnDone(s, false, more, endErr)
		return bufs
	}
	// Write what was gathered even when the terminal ended: the client
	// then resumes after it.
	start := time.Now()
	deadline := start.Add(st.writeTimeout)
	d := deadline
	if s.sliced {
		d = start.Add(min(writeSlice, st.writeTimeout))
	}
	var err error
	if err = s.conn.SetWriteDeadline(d); err == nil {
		nb := net.Buffers(bufs)
		_, err = nb.WriteTo(s.conn) // consumes nb
		if err != nil && s.sliced && d.Before(deadline) && errors.Is(err, os.ErrDeadlineExceeded) && len(nb) > 0 {
			// The client reads slowly or not at all: finish on a
			// goroutine of the stream's own, not on a worker.
			rest := slices.Clone(nb)
			clear(bufs)
			st.wg.Add(1)
			go st.finishWrite(s, rest, deadline, more, endErr)
			return bufs[:0]
		}
	}
	clear(bufs) // drop the frames
	if err != nil {
		st.end(s, err)
		return bufs[:0]
	}
	st.turnDone(s, true, more, endErr)
	return bufs[:0]
}

// finishWrite is the stall writer of s: it writes rest by deadline, then
// hands s back to the workers.
func (st *streamer) finishWrite(s *hijackedStream, rest net.Buffers, deadline time.Time, more bool, endErr error) {
	defer st.wg.Done()
	err := s.conn.SetWriteDeadline(deadline)
	if err == nil {
		_, err = rest.WriteTo(s.conn)
	}
	if err != nil {
		st.end(s, err)
		return
	}
	st.turnDone(s, true, more, endErr)
}

// turnDone ends the turn of the goroutine serving s.
func (st *streamer) turnDone(s *hijackedStream, wrote, more bool, endErr error) {
	if endErr != nil {
		st.end(s, endErr)
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s.running = false
	if wrote {
		s.lastWrite = st.now()
	}
	if s.ended {
		return
	}
	if more {
		s.queued = true
	}
	if s.queued {
		st.pushLocked(s)
	}
}

// end ends s for reason err, once.
func (st *streamer) end(s *hijackedStream, err error) {
	st.mu.Lock()
	if s.ended {
		st.mu.Unlock()
		return
	}
	s.ended = true
	st.removeLocked(s)
	st.mu.Unlock()
	st.closeStream(s, err)
	st.release() // after the close: Streams counts what is still held
}

func (st *streamer) removeLocked(s *hijackedStream) {
	last := len(st.streams) - 1
	moved := st.streams[last]
	st.streams[s.i], moved.i = moved, s.i
	st.streams[last] = nil
	st.streams = st.streams[:last]
	if c := cap(st.streams); c > 1024 && len(st.streams) < c/4 {
		st.streams = slices.Clone(st.streams) // give back the peak
	}
}

// closeStream releases what s holds. s must be ended, and out of the set.
func (st *streamer) closeStream(s *hijackedStream, err error) {
	_ = s.conn.Close()
	last := s.term.Last()
	s.term.Close()
	s.cancel()
	logStreamEnd(st.log, s.term.Topic(), s.remote, last, err)
}

// heartbeats is the heartbeat goroutine. It stops when no stream is left
// (start starts it again) or the streamer closes.
func (st *streamer) heartbeats() {
	defer st.wg.Done()
	// A quarter of the interval: an idle stream beats every 1 to 1.25
	// heartbeats.
	tick := time.NewTicker(max(st.heartbeat/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-tick.C:
		}
		idle := st.now() - int64(st.heartbeat)
		st.mu.Lock()
		if len(st.streams) == 0 {
			st.beating = false
			st.mu.Unlock()
			return
		}
		for _, s := range st.streams {
			if s.lastWrite <= idle {
				s.beat = true
				st.scheduleLocked(s)
			}
		}
		st.mu.Unlock()
	}
}

// close ends every stream, refuses new ones and waits for the streamer's
// goroutines. It is idempotent.
func (st *streamer) close() {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed = true
	streams := slices.Clone(st.streams)
	st.mu.Unlock()
	st.cancel()
	for _, s := range streams {
		st.end(s, baton.ErrClosed)
	}
	st.wg.Wait()
}

// watch makes srv's Shutdown end the streams that came from srv, and
// refuse new ones: Shutdown does not know hijacked connections. Call it
// before the connection is hijacked: a hook registered once Shutdown has
// begun would never run.
func (st *streamer) watch(srv *nethttp.Server) {
	st.mu.Lock()
	_, known := st.servers[srv]
	if !known {
		st.servers[srv] = false
	}
	st.mu.Unlock()
	if !known {
		srv.RegisterOnShutdown(func() { st.shutdown(srv) })
	}
}

// shutdown is srv's RegisterOnShutdown hook.
func (st *streamer) shutdown(srv *nethttp.Server) {
	st.mu.Lock()
	st.servers[srv] = true
	var streams []*hijackedStream
	for _, s := range st.streams {
		if s.srv == srv {
			streams = append(streams, s)
		}
	}
	st.mu.Unlock()
	for _, s := range streams {
		st.end(s, baton.ErrClosed)
	}
}

// runQueue is a FIFO ring of streams.
type runQueue struct {
	buf     []*hijackedStream
	head, n int
}

func (q *runQueue) push(s *hijackedStream) {
	if q.n == len(q.buf) {
		buf := make([]*hijackedStream, max(16, 2*len(q.buf)))
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = s
	q.n++
}

func (q *runQueue) pop() *hijackedStream {
	if q.n == 0 {
		return nil
	}
	s := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return s
}
