package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/poll"
)

// clientFrame is a client's frame: masked, as RFC 6455 wants.
func clientFrame(op ws.OpCode, fin bool, p []byte) []byte {
	return ws.MustCompileFrame(ws.MaskFrameInPlace(ws.NewFrame(op, fin, bytes.Clone(p))))
}

// TestWSMessages: fragments are joined around control frames, and each
// breach of the protocol or of the limit is its close code.
func TestWSMessages(t *testing.T) {
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	ok := cat(clientFrame(ws.OpText, false, []byte("ab")), clientFrame(ws.OpPing, true, []byte("p")),
		clientFrame(ws.OpContinuation, false, nil), clientFrame(ws.OpContinuation, true, []byte("c")),
		clientFrame(ws.OpText, true, []byte("d")))
	m := wsMessages{limit: 3}
	r := bytes.NewReader(ok)
	for _, want := range []struct {
		op ws.OpCode
		p  string
	}{{ws.OpPing, "p"}, {ws.OpText, "abc"}, {ws.OpText, "d"}} {
		op, p, err := m.next(r)
		if err != nil || op != want.op || string(p) != want.p {
			t.Fatalf("got %v %q %v, want %v %q", op, p, err, want.op, want.p)
		}
	}
	if _, _, err := m.next(r); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	unmasked := ws.MustCompileFrame(ws.NewTextFrame([]byte("x")))
	for _, c := range []struct {
		name  string
		input []byte
		code  ws.StatusCode
	}{
		{"unmasked", unmasked, ws.StatusProtocolError},
		{"continuation first", clientFrame(ws.OpContinuation, true, []byte("x")), ws.StatusProtocolError},
		{"text within a text", cat(clientFrame(ws.OpText, false, []byte("x")), clientFrame(ws.OpText, true, nil)), ws.StatusProtocolError},
		{"control fragmented", clientFrame(ws.OpPing, false, nil), ws.StatusProtocolError},
		{"reserved op code", clientFrame(ws.OpCode(3), true, nil), ws.StatusProtocolError},
		{"close of one byte", clientFrame(ws.OpClose, true, []byte{3}), ws.StatusProtocolError},
		{"over the limit", clientFrame(ws.OpText, true, []byte("abcd")), ws.StatusMessageTooBig},
		{"over the limit in fragments", cat(clientFrame(ws.OpText, false, []byte("ab")), clientFrame(ws.OpContinuation, true, []byte("cd"))), ws.StatusMessageTooBig},
		{"not UTF-8", clientFrame(ws.OpText, true, []byte{0xff}), ws.StatusInvalidFramePayloadData},
	} {
		m := wsMessages{limit: 3}
		_, _, err := m.next(bytes.NewReader(c.input))
		var ce *wsCloseError
		if !errors.As(err, &ce) || ce.code != c.code {
			t.Errorf("%s: %v, want close code %d", c.name, err, c.code)
		}
	}
}

// FuzzWSMessages: whatever the input, the reader never returns a message
// over its limit, a control frame over 125 bytes, or text that is not
// UTF-8, and fails only with a close code or the input's end.
func FuzzWSMessages(f *testing.F) {
	f.Add(clientFrame(ws.OpText, true, []byte(`{"type":"subscribe","topic":"a"}`)))
	f.Add(append(clientFrame(ws.OpText, false, []byte("ab")), clientFrame(ws.OpContinuation, true, []byte("c"))...))
	f.Add(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	f.Add(clientFrame(ws.OpPing, true, []byte("p")))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, input []byte) {
		const limit = 64
		m := wsMessages{limit: limit}
		r := bytes.NewReader(input)
		for {
			op, p, err := m.next(r)
			if err != nil {
				var ce *wsCloseError
				if !errors.As(err, &ce) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("error %v", err)
				}
				return
			}
			switch {
			case op.IsControl() && len(p) > ws.MaxControlFramePayloadSize:
				t.Fatalf("control frame of %d bytes", len(p))
			case !op.IsControl() && len(p) > limit:
				t.Fatalf("message of %d bytes over %d", len(p), limit)
			case op == ws.OpText && !utf8.Valid(p):
				t.Fatalf("text %q", p)
			}
		}
	})
}

// rawWS is a bare client socket: its handshake, then frames.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

// dialRawWS upgrades a bare connection to /v1/ws; extra goes out in the
// same write as the handshake.
func dialRawWS(t *testing.T, url string, extra []byte) *rawWS {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /v1/ws HTTP/1.1\r\nHost: baton\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != nethttp.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return &rawWS{c: c, br: br}
}

func (w *rawWS) send(t *testing.T, frame []byte) {
	t.Helper()
	if _, err := w.c.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// next reads the next frame, its payload unmasked.
func (w *rawWS) next(t *testing.T) ws.Frame {
	t.Helper()
	f, err := ws.ReadFrame(w.br)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// closeCode reads frames up to the close frame and returns its code.
func (w *rawWS) closeCode(t *testing.T) ws.StatusCode {
	t.Helper()
	for {
		if f := w.next(t); f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code
		}
	}
}

// TestWebSocketFramesRaw: the server answers a ping with a pong, serves
// frames sent with the handshake and messages in fragments, echoes a
// close, and closes with the code of each breach.
func TestWebSocketFramesRaw(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{MaxBody: 1024})
	sub := []byte(`{"type":"subscribe","topic":"a","ref":"s"}`)
	w := dialRawWS(t, e.url, clientFrame(ws.OpText, true, sub))
	if f := w.next(t); f.Header.OpCode != ws.OpText || !bytes.Contains(f.Payload, []byte(`"subscribed"`)) {
		t.Fatalf("frame %v %q, want subscribed", f.Header.OpCode, f.Payload)
	}
	w.send(t, clientFrame(ws.OpPing, true, []byte("hi")))
	if f := w.next(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
		t.Fatalf("frame %v %q, want pong hi", f.Header.OpCode, f.Payload)
	}
	w.send(t, clientFrame(ws.OpText, false, []byte(`{"type":"subscribe",`)))
	w.send(t, clientFrame(ws.OpContinuation, true, []byte(`"topic":"b","ref":"s2"}`)))
	if f := w.next(t); !bytes.Contains(f.Payload, []byte(`"ref":"s2"`)) {
		t.Fatalf("frame %q, want subscribed b", f.Payload)
	}
	w.send(t, clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	if code := w.closeCode(t); code != ws.StatusNormalClosure {
		t.Fatalf("close echo %d", code)
	}
	for _, c := range []struct {
		name  string
		frame []byte
		code  ws.StatusCode
	}{
		{"binary", clientFrame(ws.OpBinary, true, []byte("x")), ws.StatusUnsupportedData},
		{"unmasked", ws.MustCompileFrame(ws.NewTextFrame([]byte("x"))), ws.StatusProtocolError},
		{"not UTF-8", clientFrame(ws.OpText, true, []byte{0xc3}), ws.StatusInvalidFramePayloadData},
	} {
		w := dialRawWS(t, e.url, nil)
		w.send(t, c.frame)
		if code := w.closeCode(t); code != c.code {
			t.Errorf("%s: close code %d, want %d", c.name, code, c.code)
		}
	}
	poll.True(t, 10*time.Second, "every socket to end", func() bool { return e.srv.Streams() == 0 })
}

// TestWebSocketIdleHoldsNoGoroutine: idle sockets, subscribed, hold no
// goroutine each (the poller reads them when input comes).
func TestWebSocketIdleHoldsNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a goroutine per socket without epoll")
	}
	e := newEnv(t, nil, hub.Options{}, Config{Heartbeat: time.Hour})
	dialRawWS(t, e.url, nil) // the poller and the pool's goroutines start
	base := runtime.NumGoroutine()
	const n = 50
	for range n {
		w := dialRawWS(t, e.url, clientFrame(ws.OpText, true, []byte(`{"type":"subscribe","topic":"a"}`)))
		w.next(t) // subscribed
	}
	poll.True(t, 10*time.Second, "the sockets' goroutines to go", func() bool {
		return runtime.NumGoroutine() < base+n/2
	})
	if got := e.hub.Terminals("a"); got != n {
		t.Fatalf("%d terminals, want %d", got, n)
	}
}

// TestWebSocketGoroutineReader runs the socket tests with a reader
// goroutine per socket: the path without epoll (ws_poll.go).
func TestWebSocketGoroutineReader(t *testing.T) {
	wsUseEpoll = false
	t.Cleanup(func() { wsUseEpoll = true })
	for name, test := range map[string]func(*testing.T){
		"SubscribePublish": TestWebSocketSubscribePublish,
		"BadFrames":        TestWebSocketBadFrames,
		"PingsAndLimit":    TestWebSocketPingsAndLimit,
		"SlowConsumer":     TestWebSocketSlowConsumer,
		"FramesRaw":        TestWebSocketFramesRaw,
	} {
		t.Run(name, test)
	}
}

// TestWebSocketUnansweredPings: a client that answers no ping for
// WriteTimeout is dropped at a heartbeat; one that answers stays.
func TestWebSocketUnansweredPings(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{Heartbeat: 20 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	mute := dialRawWS(t, e.url, nil)
	poll.True(t, 10*time.Second, "the mute socket to be dropped", func() bool { return e.srv.Streams() == 0 })
	mute.c.Close() // ends the close handshake's wait
	w := dialRawWS(t, e.url, nil)
	for pongs := 0; pongs < 20; pongs++ { // 20 pings: more than WriteTimeout
		if f := w.next(t); f.Header.OpCode != ws.OpPing {
			t.Fatalf("frame %v, want a ping", f.Header.OpCode)
		}
		w.send(t, clientFrame(ws.OpPong, true, nil))
	}
	if n := e.srv.Streams(); n != 1 {
		t.Fatalf("%d streams, want the answering socket's", n)
	}
}
