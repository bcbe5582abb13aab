package http

import (
	"context"
	"errors"
	"log/slog"
	"net"
	nethttp "net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// Event streams: one path from the terminal, two writers.
//
// Every event stream is an eventStream in the server's streamer, which
// counts it against MaxStreams, ends it once (end) and ends them all on
// Close or on the Shutdown of the net/http server they came from. Every
// stream takes its events from its hub terminal through gather, the one
// place that calls TryNext, turns events into frames and decides on a
// heartbeat. What differs is who waits for the terminal and how the frames
// reach the client, the stream's streamWriter:
//
//   - the pool (stream_pool.go, SSEWriterPool, the default on HTTP/1.x): the
//     handler hijacks the connection and returns; the stream holds no
//     goroutine while idle. Its terminal's OnReady puts it on a run queue,
//     a bounded pool of workers gathers and writes (connWriter: one writev
//     of the shared frames), one heartbeat goroutine serves every idle
//     stream. A write that stalls moves off the worker to a goroutine of its
//     own (stall writer) until it ends or times out.
//   - a goroutine per stream (stream_response.go, SSEWriterGoroutine, and
//     every HTTP/2 stream): the handler's goroutine gathers, writes to the
//     ResponseWriter and flushes (responseWriter), then waits on the
//     terminal's Ready channel or the heartbeat timer.
//
// docs/benchmarks.md ("Two stream writers") measures one against the other.
//
// Lock order, the one place it is written (docs/architecture.md points
// here):
//
//	hub feed.mu → hub Terminal.mu → streamer.mu
//
// streamer.mu is a leaf: it guards the stream set, the run queue, the
// counters and every stream's flags. A terminal's OnReady function
// (streamer.schedule) takes it with the hub's feed and terminal locks held,
// so nothing calls into the hub (TryNext, Close, Last) or does I/O while
// holding it.
//
// Goroutine ownership: one goroutine at a time serves a stream, and only it
// calls TryNext (gather) and writes to the client: for the pool, the
// worker that set eventStream.running, then the stall writer it hands the
// write to; for the other writer, the handler's goroutine. end, from any
// goroutine, closes the connection (pool) and the terminal, which makes the
// serving goroutine's write or TryNext fail at once; a response being
// written ends at its write deadline at the latest.
type streamer struct {
	log          *slog.Logger
	heartbeat    time.Duration
	writeTimeout time.Duration
	maxStreams   int
	maxWorkers   int
	observer     Observer // nil: no metrics
	// ctx bounds the store reads of TryNext; close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	epoch  time.Time // origin of eventStream.lastWrite, on the monotonic clock

	mu      sync.Mutex
	closed  bool
	n       int            // streams counted against maxStreams (reserve/release)
	streams []*eventStream // streams not ended, both writers; eventStream.i is the index
	pooled  int            // how many of them the pool serves
	runq    runQueue
	// co spaces busy streams' writes (stream_coalesce.go); held are the
	// streams waiting for their gap, holding whether a timer will release
	// them.
	co      coalescer
	held    []*eventStream
	holding bool
	workers int  // pool worker goroutines running
	beating bool // the heartbeat goroutine runs
	// servers are the net/http servers streams came from, with whether
	// they shut down; see watch.
	servers map[*nethttp.Server]bool
	wsPoll  *wsPoller      // WebSockets' input and pooled streams' hang-ups (ws_poll.go), made with the first
	wg      sync.WaitGroup // workers, stall writers, the heartbeat goroutine, WebSocket readers
}

// streamWriter is how one stream's bytes reach its client: the only part
// of a stream that depends on its writer.
type streamWriter interface {
	// write writes bufs to the client by deadline, consuming what it
	// wrote (as net.Buffers.WriteTo does), so that a write cut short by
	// its deadline can go on where it stopped.
	write(bufs *net.Buffers, deadline time.Time) error
	// clientGone reports, without waiting or reading input, whether the
	// client is known to have closed its end.
	clientGone() bool
	// close releases the connection, so that a write in progress on
	// another goroutine fails at once. It may be called more than once.
	close()
}

// eventStream is one event stream, whichever writer serves it.
type eventStream struct {
	out    streamWriter
	src    streamSource
	cancel context.CancelFunc // the terminal's context
	srv    *nethttp.Server    // the net/http server it came from, if known
	remote string
	reqID  string // the request's id, for the stream's log lines
	// head is the stream's first bytes (the response head and the retry
	// hint) until gather hands them out; the serving goroutine's.
	head []byte
	// expires is when the stream's token expires (0: never), in ns since
	// streamer.epoch: gather then sends an "auth" event and ends it.
	expires int64
	// onEnd, if set, is called once when the stream ends (the caller's
	// stream count, internal/limits).
	onEnd func()
	// started: the response head went out before the stream was served
	// (a snapshot went first, snapshot.go).
	started bool
	// watched: the poller reports the client's end of the connection
	// (hangup); set before the stream is added. hup: it did, and gather
	// looks.
	watched bool
	hup     atomic.Bool
	pollReg // the poller's

	// Guarded by streamer.mu.
	i     int // index in streamer.streams
	ended bool
	// The pool's, guarded by streamer.mu.
	pooled    bool  // served by the pool: the heartbeat goroutine beats it
	sliced    bool  // its writes may be handed over (TCP): see stream_pool.go
	lastWrite int64 // when the last write ended, ns since streamer.epoch
	counted   int64 // the coalescer's record of this stream (stream_coalesce.go)
	queued    bool  // on the run queue, or to go back on it when running ends
	running   bool  // a worker or a stall writer serves the stream
	beat      bool  // a heartbeat is due
}

// streamSource is what a stream reads: one hub terminal (oneTopic) or the
// terminals of many topics (multiSource, multi_source.go), with the frames
// of its format: Server-Sent Events, or WebSocket messages (ws.go).
type streamSource interface {
	// frames appends the frames of the events ready to bufs, stopping
	// once about turnBytes are gathered (more: more is ready). Its error
	// ends the stream once bufs are written. Only the stream's serving
	// goroutine calls it.
	frames(st *streamer, s *eventStream, bufs [][]byte) (_ [][]byte, more bool, err error)
	// authExpired is the stream's last frame when its token expires.
	authExpired() []byte
	// Ready and OnReady are hub.Terminal's: something may be ready.
	Ready() <-chan struct{}
	OnReady(func())
	// end closes the source's terminals and returns what the log line of
	// the stream's end says of it.
	end() []any
}

// oneTopic is the source of a one-topic event stream (events.go).
type oneTopic struct{ *hub.Terminal }

func (t oneTopic) authExpired() []byte { return authExpiredFrame }

func (t oneTopic) end() []any {
	last := t.Last()
	t.Close()
	return []any{"topic", t.Topic(), "last", last}
}

func (t oneTopic) frames(st *streamer, s *eventStream, bufs [][]byte) (_ [][]byte, more bool, err error) {
	size := 0
	for {
		ev, ok, err := t.TryNext(st.ctx)
		if err != nil {
			if errors.Is(err, hub.ErrTopicDeleted) {
				bufs = append(bufs, deletedFrame(t.Topic()))
			}
			return bufs, false, err
		}
		if !ok {
			return bufs, false, nil
		}
		switch ev.Kind {
		case hub.EventItems:
			for i := range ev.Frames {
				bufs = append(bufs, ev.Frames[i].SSE)
				size += len(ev.Frames[i].SSE)
			}
		case hub.EventReset:
			st.log.Info("http: stream reset: position no longer kept", "request_id", s.reqID, "topic", t.Topic(), "earliest", ev.Earliest)
			f := hub.AppendResetSSE(nil, ev.Earliest)
			bufs = append(bufs, f)
			size += len(f)
		}
		if size >= turnBytes {
			return bufs, true, nil
		}
	}
}

// turnBytes is about the most one turn gathers (a terminal catching up
// from the store): the pool then serves other streams before this one's
// next turn.
const turnBytes = 256 << 10

var (
	heartbeatFrame = []byte(": hb\n\n")
	// errClientGone ends a stream whose client closed its connection.
	errClientGone = errors.New("client closed the connection")
	// errTokenExpired ends a stream whose token expired, after the
	// authExpiredFrame: the client resumes with a new token.
	errTokenExpired  = errors.New("token expired")
	authExpiredFrame = []byte("event: " + wire.EventAuth + "\ndata: {\"code\":\"" + baton.CodeUnauthorized + "\",\"message\":\"token expired\"}\n\n")
	// deletedFrame ends the stream of a deleted topic (hub.ErrTopicDeleted):
	// a topic name needs no JSON escaping (baton.ValidTopic).
	deletedFrame = func(topic string) []byte {
		return []byte("event: " + wire.EventDeleted + "\ndata: {\"topic\":\"" + topic + "\"}\n\n")
	}
)

func newStreamer(cfg Config, log *slog.Logger) *streamer {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamer{
		log:          log,
		heartbeat:    cfg.Heartbeat,
		writeTimeout: cfg.WriteTimeout,
		maxStreams:   cfg.MaxStreams,
		maxWorkers:   cfg.StreamWorkers,
		co:           coalescer{max: cfg.StreamCoalesce, perStream: coalescePerStream},
		observer:     cfg.Observer,
		ctx:          ctx,
		cancel:       cancel,
		epoch:        time.Now(),
		servers:      make(map[*nethttp.Server]bool),
	}
}

// Streams returns the number of event streams open on this server, with
// either writer, including those being opened.
func (s *Server) Streams() int {
	st := s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.n
}

// reserve counts a stream about to open against MaxStreams. The caller
// hands the reservation to add, or gives it back with release.
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

// add puts s, with the reservation of reserve, in the set. From here on
// the streamer owns s: it ends it once, by end. add reports false, having
// ended s, if the server or s's net/http server is closing.
func (st *streamer) add(s *eventStream) bool {
	st.mu.Lock()
	if st.closed || (s.srv != nil && st.servers[s.srv]) {
		s.ended = true
		st.mu.Unlock()
		st.drop(s, baton.ErrClosed)
		return false
	}
	s.i = len(st.streams)
	st.streams = append(st.streams, s)
	s.lastWrite = st.now()
	if s.pooled {
		st.pooled++
		if !st.beating {
			st.beating = true
			st.wg.Add(1)
			go st.heartbeats()
		}
	}
	st.mu.Unlock()
	return true
}

// gather takes what s's terminal has ready and appends its frames to bufs,
// the stream's head first; if nothing is ready and beat is set (a
// heartbeat is due), a heartbeat, or errClientGone if the client is known
// to be gone. It stops at turnBytes, reporting more. endErr, if not nil,
// ends the stream once bufs are written: the client then resumes after
// them. Only s's serving goroutine calls it.
func (st *streamer) gather(s *eventStream, beat bool, bufs [][]byte) (_ [][]byte, more bool, endErr error) {
	if s.head != nil {
		bufs = append(bufs, s.head)
		s.head = nil
	}
	if s.expires != 0 && st.now() >= s.expires {
		return append(bufs, s.src.authExpired()), false, errTokenExpired
	}
	if s.hup.Swap(false) && s.out.clientGone() {
		// The poller saw the client hang up (ws_poll.go): end now, not
		// at the next heartbeat. (Other input: the heartbeat looks.)
		return bufs, false, errClientGone
	}
	bufs, more, err := s.src.frames(st, s, bufs)
	if err != nil || more {
		return bufs, more, err
	}
	if beat && len(bufs) == 0 {
		// Idle: the one moment to check for a client gone without a
		// write (a write to a closed connection may succeed once).
		if s.out.clientGone() {
			return bufs, false, errClientGone
		}
		bufs = append(bufs, heartbeatFrame)
	}
	return bufs, false, nil
}

// drop ends s, with the reservation of reserve, before it was added.
func (st *streamer) drop(s *eventStream, err error) {
	st.closeStream(s, err)
	st.release()
}

// end ends s for reason err, once.
func (st *streamer) end(s *eventStream, err error) {
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

func (st *streamer) removeLocked(s *eventStream) {
	last := len(st.streams) - 1
	moved := st.streams[last]
	st.streams[s.i], moved.i = moved, s.i
	st.streams[last] = nil
	st.streams = st.streams[:last]
	if c := cap(st.streams); c > 1024 && len(st.streams) < c/4 {
		st.streams = slices.Clone(st.streams) // give back the peak
	}
	if s.pooled {
		st.pooled--
	}
}

// closeStream releases what s holds. s must be ended, and out of the set.
func (st *streamer) closeStream(s *eventStream, err error) {
	if s.watched {
		st.poller().remove(s) // before the close: see epoller
	}
	if c, ok := s.out.(interface{ closeFor(error) }); ok {
		c.closeFor(err) // a WebSocket says why (ws.go)
	} else {
		s.out.close()
	}
	if s.onEnd != nil {
		s.onEnd()
	}
	attrs := s.src.end()
	s.cancel()
	logStreamEnd(st.log, s.reqID, s.remote, err, attrs...)
	if st.observer != nil {
		reason := "other"
		switch {
		case errors.Is(err, hub.ErrSlowTerminal):
			reason = "slow"
		case errors.Is(err, errTokenExpired):
			reason = "auth"
		}
		st.observer.StreamEnded(reason)
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
	st.closePoller()
	st.wg.Wait()
}

// watch makes srv's Shutdown end the streams that came from srv, and
// refuse new ones: Shutdown knows neither hijacked connections nor when a
// stream's handler would return. Call it before the connection is
// hijacked: a hook registered once Shutdown has begun would never run.
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
	var streams []*eventStream
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
