package http

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// RetryHint is the reconnection delay a stream asks of EventSource clients
// (the SSE "retry" field).
const RetryHint = time.Second

// events serves GET /v1/topics/{topic}/events: the topic's published items
// as Server-Sent Events, from a position onwards, then live.
//
// Errors found before the stream starts are JSON answers. Then the stream
// goes to one of the server's two writers (stream.go): on HTTP/1.x with
// SSEWriterPool (the default) the handler hijacks the connection, makes
// the response head itself (Connection: close: the body ends with the
// connection) and hands the connection to the pool, which serves idle
// streams without a goroutine each; the handler returns. Otherwise (HTTP/2,
// SSEWriterGoroutine, a writer that cannot be hijacked) the handler streams
// on its own goroutine.
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
	snap, err := wantSnapshot(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, ok := s.admitStream(w, r)
	if !ok {
		return
	}
	st := &eventStream{}
	var first func(streamWriter) error
	if snap {
		// The terminal is subscribed once the snapshot is sent, after
		// its seq (startSnapshot, snapshot.go).
		first = func(out streamWriter) error { return s.startSnapshot(a.ctx, st, out, topic) }
	} else {
		term, err := s.cfg.Hub.Subscribe(a.ctx, topic, after)
		if err != nil {
			s.refuse(w, r, a, err)
			return
		}
		st.src = oneTopic{term}
	}
	s.serveStream(w, r, st, a, first, "topic", topic, "after", after, "snapshot", snap)
}

// admission is an event stream admitted and not served yet: its
// reservation (streams, and the caller's own count, released by onEnd),
// and the context of its terminals. The terminals may outlive the request
// (a request's context ends when its handler returns, hijacked or not):
// until stopReq (a hand-over to the pool), the request's end (the client
// gone) ends them.
type admission struct {
	ctx     context.Context
	cancel  context.CancelFunc
	stopReq func() bool
	onEnd   func()
}

// release gives back what a holds, for a stream that will not be served.
func (a *admission) release(s *Server) {
	a.stopReq()
	a.cancel()
	s.streams.release()
	a.onEnd()
}

// refuse releases a and answers err.
func (s *Server) refuse(w nethttp.ResponseWriter, r *nethttp.Request, a *admission, err error) {
	a.release(s)
	s.writeError(w, r, err)
}

// admitStream checks that the caller may open one more event stream (its
// token not expired, its own count and the node's MaxStreams not reached)
// and reserves it: the caller hands the admission to serveStream, or
// gives it back with refuse or release. It answers a refusal itself.
func (s *Server) admitStream(w nethttp.ResponseWriter, r *nethttp.Request) (*admission, bool) {
	// A token past its exp, though still within the verifier's leeway for
	// clock skew, would open a stream that ends at once with an "auth"
	// event, and an EventSource reconnecting with it would loop until the
	// leeway is over: it is refused as expired instead.
	if g := callerOf(r).grant; g != nil && !g.Expires.IsZero() && !time.Now().Before(g.Expires) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		s.writeError(w, r, wire.Errorf(baton.CodeUnauthorized, "token expired"))
		return nil, false
	}
	onEnd := func() {}
	if s.limits != nil {
		var ok bool
		if onEnd, ok = s.limits.OpenStream(callerOf(r).key); !ok {
			s.writeError(w, r, wire.Errorf(baton.CodeTooMany, "too many event streams of this client; close one (or use one stream for many topics)"))
			return nil, false
		}
	}
	if err := s.streams.reserve(); err != nil {
		onEnd()
		s.writeError(w, r, err)
		return nil, false
	}
	// The net/http server, to end its streams on its Shutdown.
	if srv, _ := r.Context().Value(nethttp.ServerContextKey).(*nethttp.Server); srv != nil {
		s.streams.watch(srv)
	}
	a := &admission{onEnd: onEnd}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.stopReq = context.AfterFunc(r.Context(), a.cancel)
	return a, true
}

// serveStream serves st as an event stream, with a, the admission of its
// source's terminals; attrs go to the log line of its opening (and of its
// end, if first fails). first, if not nil, writes the stream's first
// events (its head first) before it is served, on the handler's
// goroutine, and sets st's source or adds to it (snapshots, then the
// terminals after them: snapshot.go); if it fails the stream ends there
// (abandon). Otherwise st's source is set.
func (s *Server) serveStream(w nethttp.ResponseWriter, r *nethttp.Request, st *eventStream, a *admission, first func(streamWriter) error, attrs ...any) {
	defer a.stopReq()
	st.cancel, st.onEnd = a.cancel, a.onEnd
	st.srv, _ = r.Context().Value(nethttp.ServerContextKey).(*nethttp.Server)
	st.remote, st.reqID = r.RemoteAddr, requestID(r)
	if g := callerOf(r).grant; g != nil && !g.Expires.IsZero() {
		st.expires = max(1, s.streams.now()+int64(time.Until(g.Expires)))
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if s.cfg.SSEWriter == SSEWriterPool && r.ProtoMajor == 1 {
		// The bufio.ReadWriter is dropped: bytes it holds that the client
		// sent after the request (a pipelined request) are never read, as
		// the head says Connection: close, and its buffers go to the
		// garbage collector.
		conn, _, err := nethttp.NewResponseController(w).Hijack()
		switch {
		case err == nil:
			a.stopReq()
			answeredOnConn(w, nethttp.StatusOK)
			st.head = responseHead(h)
			out := connWriter{conn}
			if first != nil {
				if err := first(out); err != nil {
					s.abandon(st, a, out, err, attrs...)
					return
				}
			}
			s.debugFor(r, "http: stream opened", append(attrs[:len(attrs):len(attrs)], "remote", r.RemoteAddr, "writer", SSEWriterPool)...)
			_, sliced := conn.(*net.TCPConn)
			s.streams.startPooled(st, out, sliced)
			return
		case !errors.Is(err, nethttp.ErrNotSupported):
			// net/http gave the connection up but could not hand it over.
			st.out = responseWriter{}
			s.streams.drop(st, err)
			return
		}
	}
	st.head = []byte(retryLine)
	if first != nil {
		rc := nethttp.NewResponseController(w)
		if err := first(responseWriter{w: w, rc: rc}); err != nil {
			_ = rc.SetWriteDeadline(time.Time{})
			s.abandon(st, a, responseWriter{}, err, attrs...)
			return
		}
		st.started = true
	}
	s.debugFor(r, "http: stream opened", append(attrs[:len(attrs):len(attrs)], "remote", r.RemoteAddr, "writer", SSEWriterGoroutine)...)
	s.streams.serveResponse(st, w)
}

// responseHead is the head of a hijacked stream's response, with every
// header set so far (middleware's included) and the retry hint: the
// stream's first write.
func responseHead(h nethttp.Header) []byte {
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(nethttp.TimeFormat))
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(retryLine)
	return b.Bytes()
}

// retryLine starts every stream.
var retryLine = "retry: " + strconv.FormatInt(RetryHint.Milliseconds(), 10) + "\n\n"

// logStreamEnd logs the end of a stream: at info level for a slow terminal
// (the node dropped a client), else at debug level.
func logStreamEnd(log *slog.Logger, reqID, remote string, err error, attrs ...any) {
	level := slog.LevelDebug
	if errors.Is(err, hub.ErrSlowTerminal) {
		level = slog.LevelInfo
	}
	if !log.Enabled(context.Background(), level) {
		return // no logger made for a line not written
	}
	log.With("request_id", reqID).Log(context.Background(), level, "http: stream ended", append(attrs, "remote", remote, "reason", err)...)
}

// resumePosition reads where a stream starts: after the Last-Event-ID header
// if present (a reconnecting EventSource sends it, while its URL still holds
// the first ?after), else after ?after, else from the beginning.
func resumePosition(r *nethttp.Request) (uint64, error) {
	if v := strings.TrimSpace(r.Header.Get("Last-Event-ID")); v != "" {
		return parseSeq("Last-Event-ID", v, baton.MaxSeq)
	}
	return queryUint(r, "after", 0, baton.MaxSeq)
}
