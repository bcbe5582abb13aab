package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The frames of /v1/ws (RFC 6455, section 5), read and written with
// github.com/gobwas/ws: its header reader and checks, its unmasking. What
// is the socket's own is here: messages assembled from fragments, bounded
// by the read limit, and the close code each failure ends the socket with.

// wsMessages assembles a client's messages from its frames. It holds a
// message only while its fragments arrive: between messages it holds
// nothing. Only the socket's reading goroutine uses it.
type wsMessages struct {
	limit int64 // the most bytes of one message
	op    ws.OpCode
	msg   []byte // the fragments so far of a data message, when op != 0
}

// wsCloseError ends a socket with a close code (RFC 6455, section 7.4).
type wsCloseError struct {
	code   ws.StatusCode
	reason string
}

func (e *wsCloseError) Error() string {
	return fmt.Sprintf("websocket close %d: %s", e.code, e.reason)
}

func wsFail(code ws.StatusCode, format string, args ...any) error {
	return &wsCloseError{code: code, reason: clip(fmt.Sprintf(format, args...), 120)}
}

// next reads frames from r until it has a whole data message (text or
// binary, its fragments joined) or a control frame, and returns its op
// code and its payload, unmasked. A frame that breaks the protocol, a
// message over the limit or a text message that is not UTF-8 is a
// *wsCloseError; an error of r is returned as it is.
func (m *wsMessages) next(r io.Reader) (ws.OpCode, []byte, error) {
	for {
		h, err := ws.ReadHeader(r)
		switch {
		case errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected):
			return 0, nil, wsFail(ws.StatusProtocolError, "%v", err)
		case err != nil:
			return 0, nil, err
		}
		state := ws.StateServerSide
		if m.op != 0 {
			state = state.Set(ws.StateFragmented)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return 0, nil, wsFail(ws.StatusProtocolError, "%v", err)
		}
		if !h.OpCode.IsControl() && h.Length > m.limit-int64(len(m.msg)) {
			return 0, nil, wsFail(ws.StatusMessageTooBig, "a message is at most %d bytes", m.limit)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return 0, nil, err
		}
		ws.Cipher(p, h.Mask, 0)
		if h.OpCode.IsControl() {
			if h.OpCode == ws.OpClose && len(p) > 0 {
				if len(p) < 2 {
					return 0, nil, wsFail(ws.StatusProtocolError, "a close frame of one byte")
				}
				if err := ws.CheckCloseFrameData(ws.ParseCloseFrameData(p)); err != nil {
					return 0, nil, wsFail(ws.StatusProtocolError, "%v", err)
				}
			}
			return h.OpCode, p, nil
		}
		if h.OpCode != ws.OpContinuation {
			m.op = h.OpCode // CheckHeader: no message was under way
		}
		if !h.Fin {
			m.msg = append(m.msg, p...)
			continue
		}
		if len(m.msg) > 0 {
			p = append(m.msg, p...)
		}
		op := m.op
		m.op, m.msg = 0, nil
		if op == ws.OpText && !utf8.Valid(p) {
			return 0, nil, wsFail(ws.StatusInvalidFramePayloadData, "a text message that is not UTF-8")
		}
		return op, p, nil
	}
}

// wsHeader is the header of an unmasked frame (the server's) of n bytes.
func wsHeader(op ws.OpCode, n int) []byte {
	var b bytes.Buffer
	_ = ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: op, Length: int64(n)})
	return b.Bytes()
}

var (
	// wsPingFrame is a heartbeat: an empty ping.
	wsPingFrame = ws.MustCompileFrame(ws.NewPingFrame(nil))
	// errWSCut: a write found a message cut short by an earlier one that
	// failed, after which nothing may be written on the socket.
	errWSCut = errors.New("write websocket frame: a message was cut short")
)

// wsCloseFrame is a close frame with code and reason.
func wsCloseFrame(code ws.StatusCode, reason string) []byte {
	return ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
}
