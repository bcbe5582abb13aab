package http

import (
	"context"
	"errors"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// errorOf checks that a JSON error answer has the status, code and field.
func errorOf(t *testing.T, what string, resp *nethttp.Response, e wire.ErrorResponse, status int, code, field string) {
	t.Helper()
	if resp.StatusCode != status || e.Error == nil || e.Error.Code != code || e.Error.Field != field {
		t.Fatalf("%s: %d %+v, want %d %s field %q", what, resp.StatusCode, e.Error, status, code, field)
	}
}

// A DELETE of a published and subscribed topic answers what went, ends
// the topic's streams with a "deleted" event and tells the node; a second
// DELETE, a bad name or a bad ledger choice are JSON errors.
func TestDeleteTopic(t *testing.T) {
	var told atomic.Value
	var e *env
	e = newEnv(t, nil, hub.Options{}, Config{TopicDeleted: func(topic string) {
		told.Store(topic)
		e.hub.EndTopic(topic)
	}})
	p := newPublisher(t, e.store, testTopic)
	p.publish(3)
	p.appendN(2, `1`) // appended, not published
	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, "after=0"), "").run()
	for seq := uint64(1); seq <= 3; seq++ {
		ev, _ := s.next(t, 10*time.Second)
		checkItem(t, e.store, ev, seq)
	}

	var out wire.DeleteResponse
	resp := e.do("DELETE", "/v1/topics/"+testTopic, nil, nil, &out)
	want := baton.Deletion{Topic: testTopic, Items: 5, Unpublished: 2, Epoch: 1, LedgerSize: 3}
	if resp.StatusCode != 200 || out.Deleted != want {
		t.Fatalf("DELETE: %d %+v, want 200 %+v", resp.StatusCode, out.Deleted, want)
	}
	if told.Load() != testTopic {
		t.Fatalf("TopicDeleted was told %v", told.Load())
	}
	ev, ok := s.next(t, 10*time.Second)
	if !ok || ev.Type != wire.EventDeleted || !strings.Contains(string(ev.Data), `"topic":"`+testTopic+`"`) {
		t.Fatalf("stream after DELETE: %q %q (open %v), want a deleted event", ev.Type, ev.Data, ok)
	}
	if _, ok := s.next(t, 10*time.Second); ok {
		t.Fatal("the stream went on after its deleted event")
	}

	// A deleted topic reads as one never used.
	var info baton.TopicInfo
	if resp := e.do("GET", "/v1/topics/"+testTopic, nil, nil, &info); resp.StatusCode != 200 || info.LastSeq != 0 {
		t.Fatalf("GET after DELETE: %d %+v, want 200 and an empty topic", resp.StatusCode, info)
	}
	var bad wire.ErrorResponse
	errorOf(t, "second DELETE", e.do("DELETE", "/v1/topics/"+testTopic, nil, nil, &bad), bad, 404, baton.CodeNotFound, "")
	bad = wire.ErrorResponse{}
	errorOf(t, "DELETE of a bad name", e.do("DELETE", "/v1/topics/-x", nil, nil, &bad), bad, 400, baton.CodeInvalid, "topic")
	bad = wire.ErrorResponse{}
	errorOf(t, "DELETE ?ledger=maybe", e.do("DELETE", "/v1/topics/other?ledger=maybe", nil, nil, &bad), bad, 400, baton.CodeInvalid, "ledger")

	// The topic can be used again; its ledger was kept, so it goes on at 4.
	r, pub, _ := e.post(testTopic, `{"id":"a","value":1}`)
	if r.StatusCode != 201 || pub.Receipt.Seq != 4 {
		t.Fatalf("POST after DELETE: %d seq %d, want 201 seq 4", r.StatusCode, pub.Receipt.Seq)
	}
	out = wire.DeleteResponse{}
	if resp := e.do("DELETE", "/v1/topics/"+testTopic+"?ledger=delete", nil, nil, &out); resp.StatusCode != 200 || !out.Deleted.LedgerDeleted {
		t.Fatalf("DELETE ?ledger=delete: %d %+v", resp.StatusCode, out.Deleted)
	}
	if ls, err := e.store.Leaves(context.Background(), testTopic, 0, 10); err != nil || len(ls) != 0 {
		t.Fatalf("leaves after DELETE ?ledger=delete: %d, %v", len(ls), err)
	}
}

// PUT and GET /v1/topics/{topic}/retention round-trip, report the node's
// defaults filled in, and refuse bad input with the field at fault.
func TestRetentionRoutes(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{Retain: 1000, RetainAge: time.Hour})
	newPublisher(t, e.store, testTopic).publish(1)
	path := "/v1/topics/" + testTopic + "/retention"
	put := func(body string, out any) *nethttp.Response {
		return e.do("PUT", path, strings.NewReader(body), map[string]string{"Content-Type": "application/json"}, out)
	}
	var got wire.RetentionResponse
	if resp := e.do("GET", path, nil, nil, &got); resp.StatusCode != 200 ||
		got.Retention != (wire.Retention{}) || got.Effective != (wire.Retention{Items: 1000, Age: "1h0m0s"}) {
		t.Fatalf("GET of the defaults: %d %+v", resp.StatusCode, got)
	}
	if resp := put(`{"items":10,"age":"24h"}`, &got); resp.StatusCode != 200 ||
		got.Retention != (wire.Retention{Items: 10, Age: "24h0m0s"}) || got.Effective != got.Retention {
		t.Fatalf("PUT: %d %+v", resp.StatusCode, got)
	}
	if r, err := e.store.Retention(context.Background(), testTopic); err != nil || r != (baton.Retention{Items: 10, Age: 24 * time.Hour}) {
		t.Fatalf("stored retention %+v, %v", r, err)
	}
	got = wire.RetentionResponse{}
	if resp := put(`{"items":-1,"age":"none"}`, &got); resp.StatusCode != 200 || got.Effective != (wire.Retention{}) {
		t.Fatalf("PUT of no limits: %d %+v", resp.StatusCode, got)
	}
	for _, c := range []struct{ body, field string }{
		{`{"items":-2}`, "items"},
		{`{"items":1099511627777}`, "items"},
		{`{"age":"1ms"}`, "age"},
		{`{"age":"-1h"}`, "age"},
		{`{"age":"soon"}`, "age"},
		{`{"age":"1.5s"}`, ""},
		{`{"items":"10"}`, "body"},
		{`{"count":10}`, "body"},
		{`{} {}`, "body"},
		{`[]`, "body"},
	} {
		var bad wire.ErrorResponse
		resp := put(c.body, &bad)
		if c.field == "" {
			if resp.StatusCode != 200 {
				t.Fatalf("PUT %s: %d %+v", c.body, resp.StatusCode, bad.Error)
			}
			continue
		}
		errorOf(t, "PUT "+c.body, resp, bad, 400, baton.CodeInvalid, c.field)
	}
	var bad wire.ErrorResponse
	errorOf(t, "PUT to an unknown topic", e.do("PUT", "/v1/topics/nope/retention", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"}, &bad), bad, 404, baton.CodeNotFound, "")
	bad = wire.ErrorResponse{}
	errorOf(t, "PUT as text", e.do("PUT", path, strings.NewReader(`{}`), map[string]string{"Content-Type": "text/plain"}, &bad), bad, 415, baton.CodeMediaType, "")
	bad = wire.ErrorResponse{}
	errorOf(t, "PUT too large", put(`{"age":"`+strings.Repeat("1", 5000)+`h"}`, &bad), bad, 413, baton.CodeTooLarge, "")
}

// FuzzRetentionBody: whatever the body, decodeRetention gives a
// retention that passes baton.ValidateRetention and reads back the same
// through the wire form, or an ErrInvalid naming a field.
func FuzzRetentionBody(f *testing.F) {
	for _, s := range []string{`{"items":10,"age":"24h"}`, `{}`, `{"age":"none"}`, `{"items":-1}`,
		`{"age":"9223372036854775807ns"}`, `{"age":"1e3h"}`, `null`, `{"age":"0"}`, `{"items":1.5}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, err := decodeRetention([]byte(body), testTopic)
		if err != nil {
			var ie *baton.InvalidError
			if !errors.As(err, &ie) || ie.Field == "" {
				t.Fatalf("decodeRetention(%q): %v is not an invalid field", body, err)
			}
			return
		}
		if err := baton.ValidateRetention(testTopic, r); err != nil {
			t.Fatalf("decodeRetention(%q) = %+v, which fails validation: %v", body, r, err)
		}
		back, err := wire.RetentionOf(r).Parse(testTopic)
		if err != nil || back != r {
			t.Fatalf("decodeRetention(%q) = %+v, reads back as %+v, %v", body, r, back, err)
		}
	})
}
