package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
)

// wsConn is the connection of one WebSocket of /v1/ws after its handshake
// (ws.go): a stream writer of the pool (stream_pool.go) and a reader run
// by the poller (ws_poll.go). An idle socket holds no goroutine and no
// buffer: its connection, its stream (hub terminals) and this struct.
//
// Writing. Three writers share the connection, one message at a time,
// through wmu (the right to write, which a worker only tries for, and
// which a worker may hand to a stall writer):
//   - the pool: each turn's frames as one text message, its header
//     prepended (one writev, frames shared, not copied); a heartbeat as a
//     ping. A worker that finds wmu held hands the write over, as any
//     slow write (stream_pool.go). A message cut short by the slice keeps
//     wmu until the stall writer finishes it.
//   - the reader: acks, errors, snapshots, pongs, the echo of a close
//     frame, each within WriteTimeout.
//   - shutdown: the close frame, once.
//
// Reading. When the poller reports input, read serves what arrived on a
// goroutine of its own, with a pooled buffer, and returns once the buffer
// is empty (at a message's end): the poller then waits again. A message
// whose rest has not arrived is waited for within ReadTimeout.
type wsConn struct {
	conn        net.Conn
	poll        *wsPoller
	wg          *sync.WaitGroup // the streamer's
	timeout     time.Duration   // WriteTimeout: a message written, a ping's pong
	readTimeout time.Duration   // ReadTimeout: the rest of a message that began
	// onMessage serves a text message; its error ends the socket.
	onMessage func(msg []byte) error
	// end ends the socket's stream (streamer.end), which calls closeFor.
	end func(err error)

	wmu sync.Mutex // the right to write
	// held: the pool holds wmu for a message it cut short. The stream's
	// serving goroutine's.
	held   bool
	handed bool // the next write is a stall writer's; the serving goroutine's
	// msg is the pooled buffer of the message being written, if joined.
	// The serving goroutine's.
	msg    *[]byte
	sliced bool // a write cut short by its slice is handed over (stream_pool.go)
	// cut: no frame may be written: bytes of a message went out and the
	// rest never will, or the close frame went out.
	cut     atomic.Bool
	closing atomic.Bool
	// pingAt is when the oldest unanswered ping went out (UnixNano), 0 if
	// none: any frame of the client answers it.
	pingAt atomic.Int64
	// active: a goroutine reads; the poller starts at most one.
	active atomic.Bool

	// The reader's.
	rd  wsMessages
	pre []byte // bytes the client sent with the handshake, read first

	pollReg // the poller's
}

// wsCloseWait bounds the close handshake: writing the close frame, then
// waiting for the client's close or its end.
const wsCloseWait = 5 * time.Second

// wsReadBuf is the size of the buffer a reading goroutine borrows.
const wsReadBuf = 4 << 10

var wsReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, wsReadBuf) }}

// acquire takes the right to write; with wait false (a pool worker) it
// only tries. A writer waits at most for the holder's write deadline,
// which bounds every write.
func (c *wsConn) acquire(wait bool) bool {
	if c.wmu.TryLock() {
		return true
	}
	if !wait {
		return false
	}
	c.wmu.Lock()
	return true
}

func (c *wsConn) release() { c.wmu.Unlock() }

// write implements streamWriter for the pool: bufs are one turn's frames,
// or the heartbeat.
func (c *wsConn) write(bufs *net.Buffers, deadline time.Time) error {
	// A worker's write slice: cut short, turn hands the rest to a stall
	// writer, whose call is the next (handed).
	slice := c.sliced && c.timeout > writeSlice && !c.handed
	c.handed = false
	if !c.held {
		if !c.acquire(!slice) {
			c.handed = true
			return os.ErrDeadlineExceeded // nothing written: handed over
		}
		if c.cut.Load() {
			c.release()
			return errWSCut
		}
		c.held = true
		ping := len(*bufs) == 1 && len((*bufs)[0]) > 0 && &(*bufs)[0][0] == &heartbeatFrame[0]
		if ping {
			*bufs = net.Buffers{wsPingFrame}
			c.pingAt.CompareAndSwap(0, time.Now().UnixNano())
		} else {
			c.frameMessage(bufs)
		}
	}
	err := c.conn.SetWriteDeadline(deadline)
	if err == nil {
		_, err = bufs.WriteTo(c.conn)
	}
	if len(*bufs) == 0 || err == nil {
		c.cut.Store(false) // whole, or the stream ends
		c.messageDone()
		return err
	}
	// Cut short: the stall writer goes on after a worker's slice, unless
	// the socket is closing, when shutdown must not wait for it.
	c.cut.Store(true)
	if slice && errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load() {
		c.handed = true
		return err
	}
	c.messageDone()
	return err
}

// wsJoinMax is the largest message whose frames are copied into one
// pooled buffer: a writev of many small pieces (three per item of a
// topic, multi_source.go) costs more than copying them. Larger messages
// go out as their pieces, behind the header.
const wsJoinMax = 16 << 10

var wsMessageBufs = sync.Pool{New: func() any { b := make([]byte, 0, wsJoinMax+ws.MaxHeaderSize); return &b }}

// frameMessage makes bufs, a turn's frames, one text message.
func (c *wsConn) frameMessage(bufs *net.Buffers) {
	n := 0
	for _, b := range *bufs {
		n += len(b)
	}
	hdr := wsHeader(ws.OpText, n)
	if n <= wsJoinMax {
		c.msg = wsMessageBufs.Get().(*[]byte)
		m := append((*c.msg)[:0], hdr...)
		for _, b := range *bufs {
			m = append(m, b...)
		}
		*c.msg = m
		*bufs = append((*bufs)[:0], m)
		return
	}
	// The header first: the worker's slice may be shifted in place.
	*bufs = append(*bufs, nil)
	copy((*bufs)[1:], (*bufs)[:len(*bufs)-1])
	(*bufs)[0] = hdr
}

// messageDone ends the pool's message: written, or never to be.
func (c *wsConn) messageDone() {
	if c.msg != nil {
		wsMessageBufs.Put(c.msg)
		c.msg = nil
	}
	c.held = false
	c.release()
}

// writeFrame writes one frame of the reader's, within WriteTimeout.
func (c *wsConn) writeFrame(op ws.OpCode, p []byte) error {
	deadline := time.Now().Add(c.timeout)
	c.acquire(true)
	defer c.release()
	if c.cut.Load() {
		return errWSCut
	}
	bufs := net.Buffers{wsHeader(op, len(p)), p}
	err := c.conn.SetWriteDeadline(deadline)
	if err == nil {
		_, err = bufs.WriteTo(c.conn)
	}
	if err != nil && len(bufs) > 0 {
		c.cut.Store(true)
	}
	return err
}

// clientGone reports a ping unanswered for WriteTimeout: the pool then
// ends the stream at a heartbeat. A client that closes is noticed by its
// reader.
func (c *wsConn) clientGone() bool {
	at := c.pingAt.Load()
	return at != 0 && time.Now().UnixNano()-at > int64(c.timeout)
}

func (c *wsConn) close() { c.closeFor(nil) }

// closeFor ends the socket with the close code that says why its stream
// ended (docs/api.md, "WebSocket"). The close handshake runs on a
// goroutine (shutdown): closeFor never waits.
func (c *wsConn) closeFor(err error) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.poll.remove(c)
	var ce *wsCloseError
	code, reason := ws.StatusInternalServerError, "stream ended"
	switch {
	case errors.Is(err, errClientGone):
		code = 0 // the client closed, or sent its close frame (answered)
	case errors.As(err, &ce):
		code, reason = ce.code, ce.reason
	case errors.Is(err, hub.ErrSlowTerminal):
		code, reason = ws.StatusPolicyViolation, "slow consumer: resume from your positions"
	case errors.Is(err, errTokenExpired):
		code, reason = wsCloseTokenExpired, "token expired"
	case errors.Is(err, baton.ErrClosed):
		code, reason = ws.StatusGoingAway, "server closing"
	}
	c.wg.Add(1)
	go c.shutdown(code, reason)
}

// shutdown writes the close frame (code 0: none), then reads and drops
// what the client still sends until it closes or wsCloseWait passes, and
// closes the connection: closing with input unread would reset the
// connection, and a reset can lose the close frame at the client.
func (c *wsConn) shutdown(code ws.StatusCode, reason string) {
	defer c.wg.Done()
	defer c.conn.Close()
	deadline := time.Now().Add(wsCloseWait)
	if code != 0 && c.acquire(true) {
		if !c.cut.Load() {
			_ = c.conn.SetWriteDeadline(deadline)
			_, _ = c.conn.Write(wsCloseFrame(code, reason))
		}
		c.cut.Store(true) // nothing is written after the close frame
		c.release()
	}
	_ = c.conn.SetReadDeadline(deadline)
	var b [512]byte
	for {
		if _, err := c.conn.Read(b[:]); err != nil {
			return
		}
	}
}

// read serves the client's input on a goroutine of the poller's, and
// reports whether the poller should wait for more. With block (no
// poller: ws_poll.go), it waits for each message and returns only when
// the socket ends.
func (c *wsConn) read(block bool) (more bool) {
	br := wsReaders.Get().(*bufio.Reader)
	defer func() {
		br.Reset(nil)
		wsReaders.Put(br)
	}()
	var r io.Reader = c.conn
	var pre *bytes.Reader
	if c.pre != nil {
		pre = bytes.NewReader(c.pre)
		r = io.MultiReader(pre, c.conn)
		c.pre = nil
	}
	br.Reset(r)
	for first := true; ; first = false {
		if c.closing.Load() {
			return false
		}
		if br.Buffered() == 0 && !first && !block && (pre == nil || pre.Len() == 0) {
			return true
		}
		// Waiting for a message: in the poller's case, input is there.
		wait := time.Time{}
		if !block {
			wait = time.Now().Add(c.readTimeout)
		}
		if err := c.conn.SetReadDeadline(wait); err != nil {
			c.end(err)
			return false
		}
		if _, err := br.Peek(1); err != nil {
			c.inputEnded(err)
			return false
		}
		if err := c.conn.SetReadDeadline(time.Now().Add(c.readTimeout)); err != nil {
			c.end(err)
			return false
		}
		op, p, err := c.rd.next(br)
		if err != nil {
			c.inputEnded(err)
			return false
		}
		c.pingAt.Store(0) // the client is there
		if err := c.serveFrame(op, p); err != nil {
			c.end(err)
			return false
		}
	}
}

// inputEnded ends the socket whose input failed with err.
func (c *wsConn) inputEnded(err error) {
	var ce *wsCloseError
	switch {
	case errors.As(err, &ce) || c.closing.Load():
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		err = errClientGone
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = wsFail(ws.StatusPolicyViolation, "a message not sent whole within %s", c.readTimeout)
	}
	c.end(err)
}

// serveFrame answers one message or control frame. Its error ends the
// socket.
func (c *wsConn) serveFrame(op ws.OpCode, p []byte) error {
	switch op {
	case ws.OpText:
		return c.onMessage(p)
	case ws.OpBinary:
		return wsFail(ws.StatusUnsupportedData, "want text messages of JSON frames")
	case ws.OpPing:
		return c.writeFrame(ws.OpPong, p)
	case ws.OpClose:
		// Echo the code (RFC 6455, section 5.5.1); the client then closes.
		code, _ := ws.ParseCloseFrameData(p)
		var body []byte
		if len(p) >= 2 {
			body = ws.NewCloseFrameBody(code, "")
		}
		_ = c.writeFrame(ws.OpClose, body)
		return errClientGone // nothing is written after it: the stream ends
	}
	return nil // a pong
}
