package http

import (
	"bytes"
	"strings"
	"testing"
	"time"

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
