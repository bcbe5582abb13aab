//go:build !linux

package http

import (
	"errors"
	"net"
)

// epoller is Linux's (ws_poll_linux.go): elsewhere each socket has a
// reader goroutine (ws_poll.go).
type epoller struct{}

func newEpoller(*wsPoller) (*epoller, error) {
	return nil, errors.New("epoll: not on this system")
}

func (*epoller) add(pollee, net.Conn, func() bool) bool { return false }
func (*epoller) rearm(pollee)                           {}
func (*epoller) remove(pollee)                          {}
func (*epoller) close()                                 {}
