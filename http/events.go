package http

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
)

// RetryHint is the reconnection delay a stream asks of EventSource clients
// (the SSE "retry" field).
const RetryHint = time.Second

// events serves GET /v1/topics/{topic}/events: the topic's published items
// as Server-Sent Events, from a position onwards, then live.
//
// Errors found before the stream starts are JSON answers. Then, on HTTP/1.x,
// the handler hijacks the connection, writes the response head itself
// (Connection: close: the body ends with the connection) and hands the
// connection and the terminal to the server's streamer (stream.go), which
// serves idle streams without a goroutine each; the handler returns. Where
// the connection cannot be hijacked (HTTP/2, tests with a recorder) the
// handler streams on its own goroutine.
//
// The stream ends when the client goes away, the server closes, a write
// stalls for WriteTimeout, or the terminal falls too far behind the live
// feed (hub.ErrSlowTerminal). In every case the client resumes with
// Last-Event-ID.
func (s *Server) events(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	after, err := resumePosition(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.streams.reserve(); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The net/http server, to end hijacked streams on its Shutdown.
	srv, _ := r.Context().Value(nethttp.ServerContextKey).(*nethttp.Server)
	if srv != nil {
		s.streams.watch(srv)
	}
	// The terminal may outlive the request: a request's context ends when
	// its handler returns, hijacked or not. Until the hand-over, the
	// request's end (the client gone) still ends the terminal.
	ctx, cancel := context.WithCancel(context.Background())
	stopReq := context.AfterFunc(r.Context(), cancel)
	term, err := s.cfg.Hub.Subscribe(ctx, topic, after)
	if err != nil {
		stopReq()
		cancel()
		s.streams.release()
		s.writeError(w, r, err)
		return
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// The bufio.ReadWriter is dropped: bytes it holds that the client sent
	// after the request (a pipelined request) are never read, as the head
	// says Connection: close, and its buffers go to the garbage collector.
	conn, _, err := nethttp.NewResponseController(w).Hijack()
	if err == nil {
		stopReq()
		answeredOnConn(w, nethttp.StatusOK)
		s.streamHijacked(conn, srv, h, r, term, cancel, topic, after)
		return
	}
	defer s.streams.release()
	defer cancel()
	defer stopReq()
	defer term.Close()
	if !errors.Is(err, nethttp.ErrNotSupported) {
		// net/http gave the connection up but could not hand it over.
		s.endStream(topic, r.RemoteAddr, after, err)
		return
	}
	s.streamResponse(ctx, w, r, term, topic, after)
}

// streamHijacked hands the stream to the streamer, with the response head
// and the retry hint as its first write.
func (s *Server) streamHijacked(conn net.Conn, srv *nethttp.Server, h nethttp.Header, r *nethttp.Request, term *hub.Terminal, cancel context.CancelFunc, topic string, after uint64) {
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(nethttp.TimeFormat))
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&b) // every header set so far, middleware's included
	b.WriteString("\r\n")
	b.WriteString(retryLine)
	s.log.Debug("http: stream opened", "topic", topic, "after", after, "remote", r.RemoteAddr, "hijacked", true)
	s.streams.start(conn, b.Bytes(), term, cancel, srv, r.RemoteAddr)
}

// streamResponse is the stream on the handler's goroutine, for connections
// that cannot be hijacked.
func (s *Server) streamResponse(ctx context.Context, w nethttp.ResponseWriter, r *nethttp.Request, term *hub.Terminal, topic string, after uint64) {
	rc := nethttp.NewResponseController(w)
	// A write deadline outlives the request on a kept-alive connection
	// when the server has no WriteTimeout of its own: clear it.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	// write sends b and flushes it under a deadline, so that a client that
	// stopped reading cannot hold this goroutine.
	write := func(b ...[]byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil && !errors.Is(err, nethttp.ErrNotSupported) {
			return err
		}
		for _, p := range b {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return rc.Flush()
	}

	w.WriteHeader(nethttp.StatusOK)
	if err := write([]byte(retryLine)); err != nil {
		return
	}
	s.log.Debug("http: stream opened", "topic", topic, "after", after, "remote", r.RemoteAddr)

	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	var frames [][]byte
	for {
		// Send everything ready, one flush per batch.
		for {
			ev, ok, err := term.TryNext(ctx)
			if err != nil {
				s.endStream(topic, r.RemoteAddr, term.Last(), err)
				return
			}
			if !ok {
				break
			}
			frames = frames[:0]
			switch ev.Kind {
			case hub.EventItems:
				for i := range ev.Frames {
					frames = append(frames, ev.Frames[i].SSE)
				}
			case hub.EventReset:
				s.log.Info("http: stream reset: position no longer kept", "topic", topic, "earliest", ev.Earliest)
				frames = append(frames, hub.AppendResetSSE(nil, ev.Earliest))
			}
			if err := write(frames...); err != nil {
				s.endStream(topic, r.RemoteAddr, term.Last(), err)
				return
			}
		}
		select {
		case <-ctx.Done():
			s.endStream(topic, r.RemoteAddr, term.Last(), ctx.Err())
			return
		case <-s.done:
			s.endStream(topic, r.RemoteAddr, term.Last(), baton.ErrClosed)
			return
		case <-term.Ready():
		case <-hb.C:
			if err := write(heartbeatFrame); err != nil {
				s.endStream(topic, r.RemoteAddr, term.Last(), err)
				return
			}
		}
	}
}

// retryLine starts every stream.
var retryLine = "retry: " + strconv.FormatInt(RetryHint.Milliseconds(), 10) + "\n\n"

func (s *Server) endStream(topic, remote string, last uint64, err error) {
	logStreamEnd(s.log, topic, remote, last, err)
}

// logStreamEnd logs the end of a stream: at info level for a slow terminal
// (the node dropped a client), else at debug level.
func logStreamEnd(log *slog.Logger, topic, remote string, last uint64, err error) {
	level := log.Debug
	if errors.Is(err, hub.ErrSlowTerminal) {
		level = log.Info
	}
	level("http: stream ended", "topic", topic, "last", last, "remote", remote, "reason", err)
}

// resumePosition reads where a stream starts: after the Last-Event-ID header
// if present (a reconnecting EventSource sends it, while its URL still holds
// the first ?after), else after ?after, else from the beginning.
func resumePosition(r *nethttp.Request) (uint64, error) {
	if v := strings.TrimSpace(r.Header.Get("Last-Event-ID")); v != "" {
		return parseSeq("Last-Event-ID", v, math.MaxUint64)
	}
	return queryUint(r, "after", 0, math.MaxUint64)
}
