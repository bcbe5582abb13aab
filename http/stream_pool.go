package http

import (
	"errors"
	"net"
	"os"
	"slices"
	"time"
)

// The pool writer (SSEWriterPool) serves the event streams of hijacked
// HTTP/1.x connections without a goroutine per stream: an idle stream is
// its connection, its hub terminal and its eventStream, nothing else.
// stream.go has the lock order and who may touch what.
//
// A stream is queued to be served when its terminal may have something new
// (hub.Terminal.OnReady) or a heartbeat is due. The run queue holds each
// stream at most once (eventStream.queued), so it is bounded by the number of
// streams. A bounded pool of workers, started when there is work and gone
// when the queue is empty, takes streams off the queue and gives each a
// turn: gather (up to turnBytes; the stream then goes to the back of the
// queue), then one vectored write (writev) of the shared frames, with no
// buffer of the stream's own. One heartbeat goroutine, alive while the pool
// has streams, queues every stream that has written nothing for Heartbeat,
// with a heartbeat due.
//
// A client that stops reading never holds a worker: on TCP a write that has
// not finished after writeSlice is handed to a goroutine of its own, which
// finishes it within WriteTimeout of its start or ends the stream. A
// stalled client thus costs a goroutine while it is stalled, at most one
// per stream.
//
// Nothing reads a hijacked connection while it streams, so a client that
// closes its end is noticed at the next write to it: the next items, or,
// on an idle stream, the next heartbeat, before which gather peeks at the
// socket for the end of the input (so at most about 1.25 × Heartbeat after
// the close). Bytes the client sends (a pipelined request) are never read:
// the stream answered with Connection: close.

// writeSlice is how long a worker waits for one write to a TCP connection
// before it hands the rest of the write over.
const writeSlice = 20 * time.Millisecond

// connWriter writes a stream to its hijacked connection.
type connWriter struct{ conn net.Conn }

func (c connWriter) write(bufs *net.Buffers, deadline time.Time) error {
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := bufs.WriteTo(c.conn)
	return err
}

func (c connWriter) clientGone() bool { return peerClosed(c.conn) }
func (c connWriter) close()           { _ = c.conn.Close() }

// startPooled serves s on the pool, writing to out; sliced: a write may
// be handed over to a stall writer (see writeSlice). s.head is its first
// write.
func (st *streamer) startPooled(s *eventStream, out streamWriter, sliced bool) {
	s.out, s.sliced = out, sliced
	s.pooled = true
	if cw, ok := out.(connWriter); ok {
		// Before add: every end of s (closeStream) comes after, and
		// removes the registration.
		s.watched = st.poller().watch(s, cw.conn)
	}
	if !st.add(s) {
		return
	}
	s.src.OnReady(func() { st.schedule(s) })
	st.schedule(s) // what Subscribe read, and any wake-up before OnReady
}

// schedule queues s to be served. It is the terminal's OnReady function:
// see the lock order in stream.go.
func (st *streamer) schedule(s *eventStream) {
	st.mu.Lock()
	st.scheduleLocked(s)
	st.mu.Unlock()
}

func (st *streamer) scheduleLocked(s *eventStream) {
	if s.ended || s.queued {
		return
	}
	s.queued = true
	if !s.running {
		st.pushOrHoldLocked(s)
	}
}

// pushOrHoldLocked puts s on the run queue, or, if it wrote less than the
// coalescing gap ago (stream_coalesce.go), on the held list, which one
// timer hands to the run queue as each entry's gap passes (releaseHeld). A
// stream held while the timer is armed for a later time waits for it: at
// most the gap in all.
func (st *streamer) pushOrHoldLocked(s *eventStream) {
	wait := st.co.wait(st.now(), s)
	if wait <= 0 {
		st.pushLocked(s)
		return
	}
	st.held = append(st.held, s)
	if !st.holding && !st.closed {
		st.holding = true
		time.AfterFunc(wait, st.releaseHeld)
	}
}

// releaseHeld puts the held streams whose gap has passed, or will within
// a quarter of it, on the run queue, and arms the timer again for the
// others.
func (st *streamer) releaseHeld() {
	st.mu.Lock()
	defer st.mu.Unlock()
	now, slack := st.now(), time.Duration(st.co.gap()/4)
	keep, next := st.held[:0], time.Duration(0)
	for _, s := range st.held {
		if s.ended || !s.queued || s.running {
			continue
		}
		if w := st.co.wait(now, s); w > slack {
			keep = append(keep, s)
			if next == 0 || w < next {
				next = w
			}
			continue
		}
		st.pushLocked(s)
	}
	clear(st.held[len(keep):])
	st.held = keep
	st.holding = len(keep) > 0 && !st.closed
	if st.holding {
		time.AfterFunc(next, st.releaseHeld)
	}
}

// pushLocked puts s on the run queue and starts a worker if the pool has
// room.
func (st *streamer) pushLocked(s *eventStream) {
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
		bufs = st.turn(s, beat, bufs[:0])
	}
}

// turn gives s one turn: it gathers and writes. It returns bufs, emptied,
// for reuse.
func (st *streamer) turn(s *eventStream, beat bool, bufs [][]byte) [][]byte {
	bufs, more, endErr := st.gather(s, beat, bufs)
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
	nb := net.Buffers(bufs)
	err := s.out.write(&nb, d)
	if err != nil && d.Before(deadline) && errors.Is(err, os.ErrDeadlineExceeded) && len(nb) > 0 {
		// The client reads slowly or not at all: finish on a goroutine
		// of the stream's own, not on a worker.
		rest := slices.Clone(nb)
		clear(bufs)
		st.wg.Add(1)
		go st.finishWrite(s, rest, deadline, more, endErr)
		return bufs[:0]
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
func (st *streamer) finishWrite(s *eventStream, rest net.Buffers, deadline time.Time, more bool, endErr error) {
	defer st.wg.Done()
	if err := s.out.write(&rest, deadline); err != nil {
		st.end(s, err)
		return
	}
	st.turnDone(s, true, more, endErr)
}

// turnDone ends the turn of the goroutine serving s.
func (st *streamer) turnDone(s *eventStream, wrote, more bool, endErr error) {
	if endErr != nil {
		st.end(s, endErr)
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s.running = false
	if wrote {
		s.lastWrite = st.now()
		st.co.wrote(s.lastWrite, &s.counted)
	}
	if s.ended {
		return
	}
	switch {
	case more: // catching up: the next turn at once
		s.queued = true
		st.pushLocked(s)
	case s.queued:
		st.pushOrHoldLocked(s)
	}
}

// heartbeats is the heartbeat goroutine. It stops when the pool has no
// stream left (add starts it again) or the streamer closes.
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
		if st.pooled == 0 {
			st.beating = false
			st.mu.Unlock()
			return
		}
		for _, s := range st.streams {
			if s.pooled && s.lastWrite <= idle {
				s.beat = true
				st.scheduleLocked(s)
			}
		}
		st.mu.Unlock()
	}
}

// runQueue is a FIFO ring of streams.
type runQueue struct {
	buf     []*eventStream
	head, n int
}

func (q *runQueue) push(s *eventStream) {
	if q.n == len(q.buf) {
		buf := make([]*eventStream, max(16, 2*len(q.buf)))
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = s
	q.n++
}

func (q *runQueue) pop() *eventStream {
	if q.n == 0 {
		return nil
	}
	s := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return s
}
