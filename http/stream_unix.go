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
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		closed = (n == 0 && err == nil) || errors.Is(err, syscall.ECONNRESET)
		return true // never wait
	})
	return err == nil && closed
}
