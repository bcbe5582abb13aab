package http

import (
	"errors"
	"net"
	nethttp "net/http"
	"time"
)

// The goroutine writer (SSEWriterGoroutine, and every stream on HTTP/2)
// serves a stream on its handler's goroutine, through the ResponseWriter:
// net/http frames the body (chunked on HTTP/1.1) and its background read
// ends the request's context, and with it the terminal, when the client
// goes. stream.go has the lock order and who may touch what.

// responseWriter writes a stream to its http.ResponseWriter and flushes
// each write.
type responseWriter struct {
	w  nethttp.ResponseWriter
	rc *nethttp.ResponseController
}

func (r responseWriter) write(bufs *net.Buffers, deadline time.Time) error {
	if err := r.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, nethttp.ErrNotSupported) {
		return err
	}
	for len(*bufs) > 0 {
		if _, err := r.w.Write((*bufs)[0]); err != nil {
			return err
		}
		*bufs = (*bufs)[1:]
	}
	return r.rc.Flush()
}

// clientGone is false: net/http notices a client gone by itself (above).
func (responseWriter) clientGone() bool { return false }

// close does nothing: only the handler's goroutine may touch the
// ResponseWriter, and it returns once the terminal ends.
func (responseWriter) close() {}

// serveResponse serves s, with the reservation of reserve, on the calling
// handler's goroutine until s ends. s.head is the body's first write.
func (st *streamer) serveResponse(s *eventStream, w nethttp.ResponseWriter) {
	rc := nethttp.NewResponseController(w)
	// A write deadline outlives the request on a kept-alive connection
	// when the server has no WriteTimeout of its own: clear it.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	s.out = responseWriter{w: w, rc: rc}
	if !st.add(s) {
		return
	}
	if !s.started {
		w.WriteHeader(nethttp.StatusOK)
	}
	hb := time.NewTimer(st.heartbeat)
	defer hb.Stop()
	var gap *time.Timer // the coalescing wait (stream_coalesce.go)
	var (
		bufs   [][]byte
		beat   bool
		more   bool
		endErr error
	)
	for {
		bufs, more, endErr = st.gather(s, beat, bufs[:0])
		beat = false
		if len(bufs) > 0 {
			nb := net.Buffers(bufs)
			err := s.out.write(&nb, time.Now().Add(st.writeTimeout))
			clear(bufs)
			if err != nil {
				st.end(s, err)
				return
			}
			hb.Reset(st.heartbeat)
			st.mu.Lock()
			s.lastWrite = st.now()
			st.co.wrote(s.lastWrite, &s.counted)
			st.mu.Unlock()
		}
		if endErr != nil {
			st.end(s, endErr)
			return
		}
		if more {
			continue
		}
		select {
		case <-s.src.Ready(): // new events, or the terminal ended
		case <-hb.C:
			beat = true
			continue
		}
		st.mu.Lock()
		wait := st.co.wait(st.now(), s)
		st.mu.Unlock()
		if wait > 0 {
			if gap == nil {
				gap = time.NewTimer(wait)
				defer gap.Stop()
			} else {
				gap.Reset(wait)
			}
			<-gap.C
		}
	}
}
