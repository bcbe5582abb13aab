package http

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
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
	// A token past its exp, though still within the verifier's leeway for
	// clock skew, would open a stream that ends at once with an "auth"
	// event, and an EventSource reconnecting with it would loop until the
	// leeway is over: it is refused as expired instead.
	if g := callerOf(r).grant; g != nil && !g.Expires.IsZero() && !time.Now().Before(g.Expires) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		s.writeError(w, r, wire.Errorf(baton.CodeUnauthorized, "token expired"))
		return
	}
	onEnd := func() {}
	if s.limits != nil {
		var ok bool
		if onEnd, ok = s.limits.OpenStream(callerOf(r).key); !ok {
			s.writeError(w, r, wire.Errorf(baton.CodeTooMany, "too many event streams of this client; close one (or use one stream for many topics)"))
			return
		}
	}
	if err := s.streams.reserve(); err != nil {
		onEnd()
		s.writeError(w, r, err)
		return
	}
	// The net/http server, to end its streams on its Shutdown.
	srv, _ := r.Context().Value(nethttp.ServerContextKey).(*nethttp.Server)
	if srv != nil {
		s.streams.watch(srv)
	}
	// The terminal may outlive the request: a request's context ends when
	// its handler returns, hijacked or not. Until a hand-over to the pool,
	// the request's end (the client gone) ends the terminal.
	ctx, cancel := context.WithCancel(context.Background())
	stopReq := context.AfterFunc(r.Context(), cancel)
	defer stopReq()
	term, err := s.cfg.Hub.Subscribe(ctx, topic, after)
	if err != nil {
		cancel()
		s.streams.release()
		onEnd()
		s.writeError(w, r, err)
		return
	}
	st := &eventStream{term: term, cancel: cancel, srv: srv, remote: r.RemoteAddr, reqID: requestID(r), onEnd: onEnd}
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
			stopReq()
			answeredOnConn(w, nethttp.StatusOK)
			st.head = responseHead(h)
			s.logFor(r).Debug("http: stream opened", "topic", topic, "after", after, "remote", r.RemoteAddr, "writer", SSEWriterPool)
			s.streams.startPooled(st, conn)
			return
		case !errors.Is(err, nethttp.ErrNotSupported):
			// net/http gave the connection up but could not hand it over.
			st.out = responseWriter{}
			s.streams.drop(st, err)
			return
		}
	}
	st.head = []byte(retryLine)
	s.logFor(r).Debug("http: stream opened", "topic", topic, "after", after, "remote", r.RemoteAddr, "writer", SSEWriterGoroutine)
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
func logStreamEnd(log *slog.Logger, reqID, topic, remote string, last uint64, err error) {
	log = log.With("request_id", reqID)
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
		return parseSeq("Last-Event-ID", v, baton.MaxSeq)
	}
	return queryUint(r, "after", 0, baton.MaxSeq)
}
