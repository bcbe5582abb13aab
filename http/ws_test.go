package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// wsClient is a test WebSocket client that reads frames in the background.
type wsClient struct {
	c      *websocket.Conn
	frames chan wire.ServerFrame
	done   chan error
}

func dialWS(t *testing.T, url string, hdr nethttp.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/v1/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %d %v", status, err)
	}
	c.SetReadLimit(16 << 20)
	w := &wsClient{c: c, frames: make(chan wire.ServerFrame, 1<<14), done: make(chan error, 1)}
	go func() {
		defer close(w.frames)
		for {
			_, msg, err := c.Read(context.Background())
			if err != nil {
				w.done <- err
				return
			}
			for line := range bytes.SplitSeq(msg, []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var f wire.ServerFrame
				if err := json.Unmarshal(line, &f); err != nil {
					w.done <- fmt.Errorf("frame %q: %w", line, err)
					return
				}
				w.frames <- f
			}
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return w
}

func (w *wsClient) send(t *testing.T, f any) {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	w.sendRaw(t, b)
}

func (w *wsClient) sendRaw(t *testing.T, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// next returns the next frame.
func (w *wsClient) next(t *testing.T) wire.ServerFrame {
	t.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			t.Fatalf("socket ended: %v", <-w.done)
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10s")
		return wire.ServerFrame{}
	}
}

// TestWebSocketSubscribePublish subscribes to topics and a pattern,
// publishes over the socket, and checks the answers and every item once,
// in order per topic.
func TestWebSocketSubscribePublish(t *testing.T) {
	e := newEnv(t, nil, hub.Options{Recheck: 50 * time.Millisecond}, Config{})
	pa := newPublisher(t, e.store, "a")
	pa.publish(3)
	w := dialWS(t, e.url, nil)
	w.send(t, wire.ClientFrame{Type: "subscribe", Topic: "a", After: 1, Ref: "s1"})
	if f := w.next(t); f.Type != "subscribed" || f.Topic != "a" || f.Ref != "s1" {
		t.Fatalf("first frame %+v, want subscribed a", f)
	}
	for want := uint64(2); want <= 3; want++ {
		if f := w.next(t); f.Type != "item" || f.Topic != "a" || f.Seq != want {
			t.Fatalf("frame %+v, want item a/%d", f, want)
		}
	}
	w.send(t, wire.ClientFrame{Type: "subscribe", Topic: "q.*", Ref: "s2"})
	if f := w.next(t); f.Type != "subscribed" || f.Topic != "q.*" {
		t.Fatalf("frame %+v, want subscribed q.*", f)
	}
	w.send(t, map[string]any{"type": "publish", "topic": "q.x", "ref": "p1", "items": []map[string]any{
		{"id": "k1", "value": 1, "msg_id": "w1"}, {"id": "k2", "value": 2, "msg_id": "w2"}}})
	ack := w.next(t)
	var receipts []baton.Receipt
	if err := json.Unmarshal(ack.Items, &receipts); ack.Type != "ack" || ack.Ref != "p1" || err != nil || len(receipts) != 2 || receipts[1].Seq != 2 {
		t.Fatalf("ack %+v (%v), want two receipts", ack, err)
	}
	// Commit what was appended: the items then reach the socket through
	// the pattern.
	pq := newPublisher(t, e.store, "q.x")
	pq.commitAll()
	for want := uint64(1); want <= 2; want++ {
		f := w.next(t)
		if f.Type != "item" || f.Topic != "q.x" || f.Seq != want || f.Hash != receipts[want-1].Hash {
			t.Fatalf("frame %+v, want item q.x/%d with the ack's hash", f, want)
		}
	}
	w.send(t, wire.ClientFrame{Type: "unsubscribe", Topic: "a", Ref: "u1"})
	if f := w.next(t); f.Type != "unsubscribed" || f.Topic != "a" {
		t.Fatalf("frame %+v, want unsubscribed a", f)
	}
	pa.publish(1)
	pq.appendN(1, "")
	pq.commitAll()
	if f := w.next(t); f.Type != "item" || f.Topic != "q.x" || f.Seq != 3 {
		t.Fatalf("frame %+v, want only q.x/3 after unsubscribing a", f)
	}
}

// TestWebSocketBadFrames: each bad frame gets an error frame with the
// JSON error body of docs/api.md, and the socket goes on.
func TestWebSocketBadFrames(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	w := dialWS(t, e.url, nil)
	for _, c := range []struct {
		frame string
		code  string
	}{
		{`{"type":`, baton.CodeInvalid},
		{`{"type":"dance","ref":"r"}`, baton.CodeInvalid},
		{`{"type":"subscribe","topic":"a b","ref":"r"}`, baton.CodeInvalid},
		{`{"type":"subscribe","topic":"qu*","ref":"r"}`, baton.CodeInvalid},
		{`{"type":"subscribe","topic":"q.*","snapshot":"yes","ref":"r"}`, baton.CodeInvalid},
		{`{"type":"subscribe","topic":"a","snapshot":true,"after":3,"ref":"r"}`, baton.CodeInvalid},
		{`{"type":"subscribe","topic":"q.*","positions":{"z":1},"ref":"r"}`, baton.CodeInvalid},
		{`{"type":"unsubscribe","topic":"never","ref":"r"}`, baton.CodeNotFound},
		{`{"type":"publish","topic":"a","ref":"r"}`, baton.CodeInvalid},
		{`{"type":"publish","topic":"a","items":[{"id":"","value":1}],"ref":"r"}`, baton.CodeInvalid},
		{`{"type":"subscribe","topic":"a","ref":"` + strings.Repeat("r", maxRefLen+1) + `"}`, baton.CodeInvalid},
	} {
		w.sendRaw(t, []byte(c.frame))
		f := w.next(t)
		if f.Type != "error" || f.Error == nil || f.Error.Code != c.code {
			t.Fatalf("%s: frame %+v, want error %s", c.frame, f, c.code)
		}
	}
	if n := e.lastSeq("a"); n != 0 {
		t.Fatalf("%d items appended by bad frames", n)
	}
	for i := range wire.MaxStreamPatterns {
		w.send(t, wire.ClientFrame{Type: "subscribe", Topic: fmt.Sprintf("p%d.*", i)})
		if f := w.next(t); f.Type != "subscribed" {
			t.Fatalf("pattern %d: %+v", i, f)
		}
	}
	w.send(t, wire.ClientFrame{Type: "subscribe", Topic: "last.*"})
	if f := w.next(t); f.Type != "error" || f.Error.Code != baton.CodeTooLarge {
		t.Fatalf("pattern over the limit: %+v", f)
	}
}

// TestWebSocketAccess: topics need the subscribe right, patterns must lie
// within it, publishing needs the publish right and an origin that may
// write, and a cookie counts only for origins that may send credentials.
func TestWebSocketAccess(t *testing.T) {
	a := newAuthEnv(t, Config{CORSOrigins: []string{"https://app.example"}})
	tok := a.token(time.Hour, auth.Rights{Subscribe: []string{"quotes.*"}, Publish: []string{"quotes.*"}})
	bearer := nethttp.Header{"Authorization": {"Bearer " + tok}}
	w := dialWS(t, a.url, bearer)
	for _, c := range []struct {
		frame wire.ClientFrame
		want  string
	}{
		{wire.ClientFrame{Type: "subscribe", Topic: "secret"}, baton.CodeForbidden},
		{wire.ClientFrame{Type: "subscribe", Topic: "*"}, baton.CodeForbidden},
		{wire.ClientFrame{Type: "subscribe", Topic: "quotes.*"}, "subscribed"},
		{wire.ClientFrame{Type: "publish", Topic: "secret", Items: json.RawMessage(`{"id":"a","value":1}`)}, baton.CodeForbidden},
		{wire.ClientFrame{Type: "publish", Topic: "quotes.a", Items: json.RawMessage(`{"id":"a","value":1}`)}, "ack"},
	} {
		w.send(t, c.frame)
		f := w.next(t)
		for f.Type == "item" {
			f = w.next(t)
		}
		got := f.Type
		if f.Error != nil {
			got = f.Error.Code
		}
		if got != c.want {
			t.Fatalf("%+v: %+v, want %s", c.frame, f, c.want)
		}
	}
	// Another origin may read but not publish.
	other := nethttp.Header{"Authorization": {"Bearer " + tok}, "Origin": {"https://evil.example"}}
	w = dialWS(t, a.url, other)
	w.send(t, wire.ClientFrame{Type: "publish", Topic: "quotes.a", Items: json.RawMessage(`{"id":"a","value":1}`)})
	if f := w.next(t); f.Error == nil || f.Error.Code != baton.CodeForbidden {
		t.Fatalf("publish from another origin: %+v", f)
	}
	// A cookie from another origin is refused; from the listed one it
	// counts.
	cookie := func(origin string) nethttp.Header {
		return nethttp.Header{"Cookie": {auth.CookieName + "=" + tok}, "Origin": {origin}}
	}
	if status, _ := a.call("GET", "/v1/ws", "", ""); status != 401 {
		t.Fatalf("no token: %d", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.url, "http")+"/v1/ws", &websocket.DialOptions{HTTPHeader: cookie("https://evil.example")})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cookie from another origin: %v %v", resp, err)
	}
	dialWS(t, a.url, cookie("https://app.example"))
}

// TestWebSocketSlowConsumer: a client that does not read is disconnected
// with close code 1008, and resumes from its positions.
func TestWebSocketSlowConsumer(t *testing.T) {
	e := newEnv(t, nil, hub.Options{BufferItems: 64, ReadBatch: 16}, Config{WriteTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	b, _ := json.Marshal(wire.ClientFrame{Type: "subscribe", Topic: testTopic})
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if n := e.hub.Terminals(testTopic); n != 1 {
			return fmt.Errorf("%d terminals", n)
		}
		return nil
	})
	p := newPublisher(t, e.store, testTopic)
	big := `"` + strings.Repeat("x", 4096) + `"`
	for range 40 {
		p.appendN(50, big)
		p.commitAll()
		if e.hub.Terminals(testTopic) == 0 {
			break
		}
	}
	checkFor(t, 10*time.Second, func() error {
		if n := e.hub.Terminals(testTopic); n != 0 {
			return fmt.Errorf("%d terminals", n)
		}
		return nil
	})
	// Read what was sent, then the close frame.
	c.SetReadLimit(64 << 20)
	for {
		_, _, err := c.Read(context.Background())
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("socket ended with %v (code %d), want 1008", err, code)
			}
			return
		}
	}
}

// TestWebSocketTokenExpires: the socket of an expiring token gets an auth
// frame, then closes with 4001.
func TestWebSocketTokenExpires(t *testing.T) {
	a := newAuthEnv(t, Config{Heartbeat: 50 * time.Millisecond})
	tok := a.token(1500*time.Millisecond, auth.Rights{Subscribe: []string{"*"}})
	w := dialWS(t, a.url, nethttp.Header{"Authorization": {"Bearer " + tok}})
	w.send(t, wire.ClientFrame{Type: "subscribe", Topic: testTopic})
	if f := w.next(t); f.Type != "subscribed" {
		t.Fatalf("frame %+v", f)
	}
	if f := w.next(t); f.Type != wire.EventAuth || f.Code != baton.CodeUnauthorized {
		t.Fatalf("frame %+v, want auth", f)
	}
	select {
	case err := <-w.done:
		if code := websocket.CloseStatus(err); code != wsCloseTokenExpired {
			t.Fatalf("socket ended with %v, want close code 4001", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the socket outlived its token")
	}
}

// TestWebSocketPingsAndLimit: an idle socket is pinged every heartbeat; a
// message over the limit ends the socket with 1009.
func TestWebSocketPingsAndLimit(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{Heartbeat: 20 * time.Millisecond, MaxBody: 1024})
	var pings atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/v1/ws", &websocket.DialOptions{
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	read := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		read <- err
	}()
	checkFor(t, 10*time.Second, func() error {
		if n := pings.Load(); n < 3 {
			return fmt.Errorf("%d pings", n)
		}
		return nil
	})
	big := make([]byte, 1024+64<<10+1)
	for i := range big {
		big[i] = ' '
	}
	_ = c.Write(ctx, websocket.MessageText, big)
	select {
	case err := <-read:
		if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
			t.Fatalf("socket ended with %v, want 1009", err)
		}
	case <-ctx.Done():
		t.Fatal("the socket took a message over its limit")
	}
}
