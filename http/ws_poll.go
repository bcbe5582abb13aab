package http

import "sync"

// wsPoller starts the reading of WebSockets that have input (wsConn.read).
// On Linux it is one epoll instance for the server's sockets
// (ws_poll_linux.go): an idle socket then holds no goroutine, and a
// goroutine reads a socket only while its input is served. Elsewhere, for
// a connection without a file descriptor, or if epoll cannot be had, each
// socket has a goroutine that blocks in its reads, as coder/websocket's
// reader did (docs/benchmarks.md, "Many topics, WebSocket").
type wsPoller struct {
	wg *sync.WaitGroup // the streamer's: Close waits for the readers
	ep *epoller        // nil: a goroutine per socket
}

// add starts reading c: on the poller's readiness, or on a goroutine of
// its own.
func (p *wsPoller) add(c *wsConn) {
	if p.ep != nil && p.ep.add(c) {
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

// remove stops the poller reporting c's input. The caller closes c's
// connection after it: the descriptor is then no longer watched.
func (p *wsPoller) remove(c *wsConn) {
	if p != nil && p.ep != nil {
		p.ep.remove(c)
	}
}

// poller returns the streamer's WebSocket poller, made with the first
// socket; close stops it (streamer.close).
func (st *streamer) poller() *wsPoller {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.wsPoll == nil {
		st.wsPoll = &wsPoller{wg: &st.wg}
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
