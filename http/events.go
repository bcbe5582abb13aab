package http

import (
	"errors"
	"math"
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
	ctx := r.Context()
	term, err := s.cfg.Hub.Subscribe(ctx, topic, after)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer term.Close()

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

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(nethttp.StatusOK)
	if err := write([]byte("retry: " + strconv.FormatInt(RetryHint.Milliseconds(), 10) + "\n\n")); err != nil {
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
				s.endStream(r, topic, term.Last(), err)
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
				s.endStream(r, topic, term.Last(), err)
				return
			}
		}
		select {
		case <-ctx.Done():
			s.endStream(r, topic, term.Last(), ctx.Err())
			return
		case <-s.done:
			s.endStream(r, topic, term.Last(), baton.ErrClosed)
			return
		case <-term.Ready():
		case <-hb.C:
			if err := write([]byte(": hb\n\n")); err != nil {
				s.endStream(r, topic, term.Last(), err)
				return
			}
		}
	}
}

func (s *Server) endStream(r *nethttp.Request, topic string, last uint64, err error) {
	level := s.log.Debug
	if errors.Is(err, hub.ErrSlowTerminal) {
		level = s.log.Info
	}
	level("http: stream ended", "topic", topic, "last", last, "remote", r.RemoteAddr, "reason", err)
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
