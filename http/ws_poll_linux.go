//go:build linux

package http

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// epoller is one epoll instance watching the sockets of a server for
// input, each with a one-shot registration: reported once, then re-armed
// by its reader when done (wsPoller.start), so that one goroutine at a
// time reads a socket; a pooled event stream's is reported once, when its
// client hangs up (or sends something), and not re-armed. The epoll descriptor is itself waited on through
// Go's own poller (an epoll descriptor is pollable): its goroutine, run,
// is parked, not a thread blocked in epoll_wait, and closing it wakes it.
//
// Descriptor numbers come back once closed: an event carries the
// registration's generation with the descriptor, and only the socket
// registered under both gets it. remove deletes a registration before the
// connection is closed, so a closed descriptor is never re-armed.
type epoller struct {
	p  *wsPoller
	f  *os.File
	rc syscall.RawConn
	fd int

	mu     sync.Mutex
	socks  map[int32]pollee // by descriptor
	gen    int32
	closed bool
}

const epollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newEpoller(p *wsPoller) (*epoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set epoll non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "websocket-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	e := &epoller{p: p, f: f, rc: rc, fd: fd, socks: make(map[int32]pollee)}
	p.wg.Add(1)
	go e.run()
	return e, nil
}

// run hands every socket with input to its reader, until close.
func (e *epoller) run() {
	defer e.p.wg.Done()
	events := make([]unix.EpollEvent, 128)
	for {
		var n int
		var werr error
		err := e.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
		})
		if err != nil || werr != nil {
			return // closed
		}
		for _, ev := range events[:n] {
			e.mu.Lock()
			x := e.socks[ev.Fd]
			if x != nil && x.reg().pollGen != ev.Pad {
				x = nil // a closed socket's event
			}
			e.mu.Unlock()
			if x != nil {
				e.p.ready(x)
			}
		}
	}
}

// add registers x, the socket of conn, or reports false if conn has no
// descriptor of its own (a TLS connection's input is not the
// descriptor's) or epoll refuses it. ending reports that x's connection
// is being closed: nothing to watch.
func (e *epoller) add(x pollee, conn net.Conn, ending func() bool) bool {
	rc := rawConnOf(conn)
	if rc == nil {
		return false
	}
	added := false
	cerr := rc.Control(func(fd uintptr) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.closed || ending() {
			added = true // nothing to read: the socket ends
			return
		}
		e.gen++
		r := x.reg()
		r.pollFD, r.pollGen = int32(fd), e.gen
		ev := unix.EpollEvent{Events: epollEvents, Fd: r.pollFD, Pad: r.pollGen}
		if unix.EpollCtl(e.fd, unix.EPOLL_CTL_ADD, int(fd), &ev) == nil {
			e.socks[r.pollFD] = x
			added = true
		}
	})
	return cerr == nil && added
}

// rearm waits for x's next input.
func (e *epoller) rearm(x pollee) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := x.reg()
	if e.closed || e.socks[r.pollFD] != x {
		return
	}
	ev := unix.EpollEvent{Events: epollEvents, Fd: r.pollFD, Pad: r.pollGen}
	_ = unix.EpollCtl(e.fd, unix.EPOLL_CTL_MOD, int(r.pollFD), &ev)
}

func (e *epoller) remove(x pollee) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := x.reg()
	if e.closed || e.socks[r.pollFD] != x {
		return
	}
	delete(e.socks, r.pollFD)
	_ = unix.EpollCtl(e.fd, unix.EPOLL_CTL_DEL, int(r.pollFD), nil)
}

// close stops the poller: sockets are ended before it (streamer.close).
func (e *epoller) close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	clear(e.socks)
	e.mu.Unlock()
	e.f.Close()
}
