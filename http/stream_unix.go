//go:build unix

package http

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the client has closed its end of c (or reset
// it), without waiting and without consuming input: a peek at the socket.
// Go sockets are non-blocking, so the peek returns at once.
func peerClosed(c net.Conn) bool {
	rc := rawConnOf(c)
	if rc == nil {
		return false
	}
	closed := false
	var b [1]byte
	err := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		closed = (n == 0 && err == nil) || errors.Is(err, syscall.ECONNRESET)
		return true // never wait
	})
	return err == nil && closed
}

// rawConnOf is c's descriptor, or nil if c has none of its own (a TLS
// connection).
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
