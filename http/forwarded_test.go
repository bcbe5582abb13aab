package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/forward"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// TestForwardedAppend: POST forward.Path appends what a node signed with
// the nodes' key, and refuses anything else with a JSON error that
// changes nothing.
func TestForwardedAppend(t *testing.T) {
	key := bytes.Repeat([]byte{1}, forward.KeySize)
	e := newEnv(t, nil, hub.Options{}, Config{ForwardKey: key})
	path := "/v1/internal/topics/" + testTopic + "/items"
	body := `[{"id":"k","value":1,"msg_id":"m1"},{"id":"k","value":2,"msg_id":"m2"}]`
	sign := func(k []byte, topic, body string, deadline time.Time) map[string]string {
		return map[string]string{forward.Header: forward.Sign(k, "n2", topic, []byte(body), deadline)}
	}
	soon := time.Now().Add(time.Second)
	other := bytes.Repeat([]byte{2}, forward.KeySize)
	for _, tc := range []struct {
		what   string
		hdr    map[string]string
		body   string
		status int
		code   string
	}{
		{"no signature", nil, body, 401, "unauthorized"},
		{"signed with another key", sign(other, testTopic, body, soon), body, 401, "unauthorized"},
		{"signed for another topic", sign(key, "other", body, soon), body, 401, "unauthorized"},
		{"signed for another body", sign(key, testTopic, `[{"id":"k","value":9,"msg_id":"m9"}]`, soon), body, 401, "unauthorized"},
		{"past its deadline", sign(key, testTopic, body, time.Now().Add(-time.Millisecond)), body, 401, "unauthorized"},
		{"from a web page", map[string]string{forward.Header: sign(key, testTopic, body, soon)[forward.Header], "Origin": "http://127.0.0.1:1"}, body, 403, "forbidden"},
		{"a bad body, signed", sign(key, testTopic, `[{"id":"","value":1}]`, soon), `[{"id":"","value":1}]`, 400, "invalid"},
	} {
		var er wire.ErrorResponse
		resp := e.do("POST", path, strings.NewReader(tc.body), tc.hdr, &er)
		if resp.StatusCode != tc.status || er.Error == nil || er.Error.Code != tc.code {
			t.Errorf("%s: %d %+v, want %d %s", tc.what, resp.StatusCode, er.Error, tc.status, tc.code)
		}
		if n := e.lastSeq(testTopic); n != 0 {
			t.Fatalf("%s: appended %d items", tc.what, n)
		}
	}
	var ok wire.PublishResponse
	resp := e.do("POST", path, strings.NewReader(body), sign(key, testTopic, body, soon), &ok)
	if resp.StatusCode != 201 || len(ok.Items) != 2 || ok.Items[1].Seq != 2 || ok.Items[1].MsgID != "m2" {
		t.Fatalf("signed: %d %+v", resp.StatusCode, ok)
	}
	if n := e.lastSeq(testTopic); n != 2 {
		t.Fatalf("appended %d items, want 2", n)
	}
}

// TestForwardedAppendOff: without the nodes' key the route does not exist.
func TestForwardedAppendOff(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	body := `{"id":"k","value":1}`
	hdr := map[string]string{forward.Header: forward.Sign(make([]byte, forward.KeySize), "n2", testTopic, []byte(body), time.Now().Add(time.Second))}
	var er wire.ErrorResponse
	if resp := e.do("POST", "/v1/internal/topics/"+testTopic+"/items", strings.NewReader(body), hdr, &er); resp.StatusCode != 404 {
		t.Fatalf("%d %+v, want 404", resp.StatusCode, er.Error)
	}
	if n := e.lastSeq(testTopic); n != 0 {
		t.Fatalf("appended %d items", n)
	}
}

// readSpy is a body that records whether anything read it.
type readSpy struct {
	r    io.Reader
	read bool
}

func (b *readSpy) Read(p []byte) (int, error) {
	b.read = true
	return b.r.Read(p)
}

// TestForwardedAppendRefusedBeforeTheBody: a request from another machine,
// or with no plausible signature, is refused before its body is read
// (a forward's signature covers the body, so the full check needs it).
func TestForwardedAppendRefusedBeforeTheBody(t *testing.T) {
	key := bytes.Repeat([]byte{1}, forward.KeySize)
	e := newEnv(t, nil, hub.Options{}, Config{ForwardKey: key})
	body := `{"id":"k","value":1,"msg_id":"m1"}`
	good := forward.Sign(key, "n2", testTopic, []byte(body), time.Now().Add(time.Second))
	for _, tc := range []struct {
		what, remote, sig string
		status            int
		code              string
	}{
		{"from another machine, signed", "192.0.2.1:1234", good, 403, "forbidden"},
		{"from this machine, no signature", "127.0.0.1:5555", "", 401, "unauthorized"},
		{"from this machine, an expired signature", "127.0.0.1:5555", forward.Sign(key, "n2", testTopic, []byte(body), time.Now().Add(-time.Second)), 401, "unauthorized"},
	} {
		spy := &readSpy{r: strings.NewReader(body)}
		req := httptest.NewRequest("POST", "/v1/internal/topics/"+testTopic+"/items", spy)
		req.RemoteAddr = tc.remote
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		if tc.sig != "" {
			req.Header.Set(forward.Header, tc.sig)
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		var er wire.ErrorResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || rec.Code != tc.status || er.Error == nil || er.Error.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.what, rec.Code, rec.Body.Bytes(), tc.status, tc.code)
		}
		if spy.read {
			t.Errorf("%s: the body was read", tc.what)
		}
		if n := e.lastSeq(testTopic); n != 0 {
			t.Fatalf("%s: appended %d items", tc.what, n)
		}
	}
	// The same request from this machine, signed, is appended.
	req := httptest.NewRequest("POST", "/v1/internal/topics/"+testTopic+"/items", strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(forward.Header, good)
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 201 || e.lastSeq(testTopic) != 1 {
		t.Fatalf("signed, from this machine: %d %s", rec.Code, rec.Body.Bytes())
	}
}

// TestPublishesGoThroughAppend: a POST and a WebSocket publish frame are
// both appended through Config.Append (a forward.Forwarder's in baton
// serve), never the store's Append directly.
func TestPublishesGoThroughAppend(t *testing.T) {
	var calls atomic.Int64
	var e *env
	e = newEnv(t, nil, hub.Options{}, Config{Append: func(ctx context.Context, topic string, ups []baton.Update) ([]baton.Receipt, error) {
		calls.Add(1)
		return e.store.Append(ctx, topic, ups)
	}})
	if resp, _, _ := e.post(testTopic, `{"id":"k","value":1,"msg_id":"m1"}`); resp.StatusCode != 201 || calls.Load() != 1 {
		t.Fatalf("POST: %d, Append called %d times", resp.StatusCode, calls.Load())
	}
	w := dialWS(t, e.url, nil)
	w.send(t, wire.ClientFrame{Type: "publish", Topic: testTopic, Ref: "p1", Items: json.RawMessage(`{"id":"k","value":2,"msg_id":"m2"}`)})
	if f := w.next(t); f.Type != "ack" || calls.Load() != 2 {
		t.Fatalf("WebSocket publish: frame %+v, Append called %d times", f, calls.Load())
	}
	if n := e.lastSeq(testTopic); n != 2 {
		t.Fatalf("appended %d items, want 2", n)
	}
}

// TestPublishNamesHolder: a publish's answer names the topic's lease
// holder (Baton-Holder) when Config.Holder knows another node holds it,
// and a web page of an allowed origin may read the header; no header
// otherwise.
func TestPublishNamesHolder(t *testing.T) {
	var held atomic.Bool
	e := newEnv(t, nil, hub.Options{}, Config{CORSOrigins: []string{"http://page.example"},
		Holder: func(topic string) (string, bool) { return "127.0.0.1:7001", held.Load() && topic == testTopic }})
	path := "/v1/topics/" + testTopic + "/items"
	resp := e.do("POST", path, strings.NewReader(`{"id":"k","value":1}`), nil, nil)
	if resp.StatusCode != 201 || resp.Header.Get(wire.HolderHeader) != "" {
		t.Fatalf("no other holder: %d, %s %q", resp.StatusCode, wire.HolderHeader, resp.Header.Get(wire.HolderHeader))
	}
	held.Store(true)
	resp = e.do("POST", path, strings.NewReader(`{"id":"k","value":2}`), map[string]string{"Origin": "http://page.example"}, nil)
	if resp.StatusCode != 201 || resp.Header.Get(wire.HolderHeader) != "127.0.0.1:7001" {
		t.Fatalf("another node holds the topic: %d, %s %q", resp.StatusCode, wire.HolderHeader, resp.Header.Get(wire.HolderHeader))
	}
	if exp := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, wire.HolderHeader) {
		t.Fatalf("a page may not read %s: Access-Control-Expose-Headers %q", wire.HolderHeader, exp)
	}
	var er wire.ErrorResponse
	resp = e.do("POST", path, strings.NewReader(`{"id":"","value":1}`), nil, &er)
	if resp.StatusCode != 400 || resp.Header.Get(wire.HolderHeader) != "" {
		t.Fatalf("a refused publish: %d, %s %q", resp.StatusCode, wire.HolderHeader, resp.Header.Get(wire.HolderHeader))
	}
}
