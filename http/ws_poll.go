package http

import (
	"net"
	"sync"
)

// wsPoller watches a server's sockets with no goroutine of their own: it
// starts the reading of WebSockets that have input (wsConn.read), and
// tells the pool of an event stream whose client hung up (hangup), so that
// the stream ends then, not at its next heartbeat. On Linux it is one
// epoll instance for the server's sockets (ws_poll_linux.go): an idle
// socket then holds no goroutine, and a goroutine reads a socket only
// while its input is served. Elsewhere, for a connection without a file
// descriptor (TLS), or if epoll cannot be had, each socket has a goroutine
// that blocks in its reads, as coder/websocket's reader did
// (docs/benchmarks.md, "Many topics, WebSocket"), and an event stream's
// hang-up is seen at its next heartbeat.
type wsPoller struct {
	wg     *sync.WaitGroup // the streamer's: Close waits for the readers
	ep     *epoller        // nil: a goroutine per socket
	hangup func(*eventStream)
}

// pollReg is a socket's registration with the epoller: its descriptor
// and the registration's generation, guarded by the epoller's lock.
type pollReg struct{ pollFD, pollGen int32 }

func (r *pollReg) reg() *pollReg { return r }

// pollee is a socket the epoller watches: a *wsConn or an *eventStream.
type pollee interface{ reg() *pollReg }

// add starts reading c: on the poller's readiness, or on a goroutine of
// its own.
func (p *wsPoller) add(c *wsConn) {
	if p.ep != nil && p.ep.add(c, c.conn, c.closing.Load) {
		if c.pre != nil {
			p.start(c) // input came with the handshake: no readiness for it
		}
		return
	}
	c.active.Store(true)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c.read(true)
	}()
}

// start runs c's reader on a goroutine of its own for the input that is
// there, then waits for more (a one-shot registration, re-armed), unless
// one runs already: that one re-arms when it is done.
func (p *wsPoller) start(c *wsConn) {
	if !c.active.CompareAndSwap(false, true) {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		more := c.read(false)
		c.active.Store(false)
		if more {
			p.ep.rearm(c)
		}
	}()
}

// watch reports the hang-up of s's client, on conn, to hangup; false if
// it cannot (no epoll, no descriptor: a TLS connection).
func (p *wsPoller) watch(s *eventStream, conn net.Conn) bool {
	return p.ep != nil && p.ep.add(s, conn, func() bool { return false })
}

// ready hands x's input to its reader (a WebSocket) or its hang-up to the
// pool (an event stream). On the epoller's goroutine: it must not block.
func (p *wsPoller) ready(x pollee) {
	switch x := x.(type) {
	case *wsConn:
		p.start(x)
	case *eventStream:
		p.hangup(x)
	}
}

// remove stops the poller reporting x's input. The caller closes x's
// connection after it: the descriptor is then no longer watched.
func (p *wsPoller) remove(x pollee) {
	if p != nil && p.ep != nil {
		p.ep.remove(x)
	}
}

// poller returns the streamer's WebSocket poller, made with the first
// socket; close stops it (streamer.close).
func (st *streamer) poller() *wsPoller {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.wsPoll == nil {
		st.wsPoll = &wsPoller{wg: &st.wg, hangup: st.hungUp}
		// Closed: the socket is refused (add), and no goroutine may start
		// after close's wait.
		if wsUseEpoll && !st.closed {
			ep, err := newEpoller(st.wsPoll)
			if err != nil {
				st.log.Warn("http: websocket poller: a reader goroutine per socket", "err", err)
			} else {
				st.wsPoll.ep = ep
			}
		}
	}
	return st.wsPoll
}

// hungUp is told by the poller that s's client closed its end (or sent
// something, which an event stream's client does not): gather looks at
// once.
func (st *streamer) hungUp(s *eventStream) {
	s.hup.Store(true)
	st.schedule(s)
}

// wsUseEpoll is false in tests of the goroutine per socket.
var wsUseEpoll = true

func (st *streamer) closePoller() {
	st.mu.Lock()
	p := st.wsPoll
	st.mu.Unlock()
	if p != nil && p.ep != nil {
		p.ep.close()
	}
}
