package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

func multiURL(base string, topics []string, extra string) string {
	q := url.Values{"topic": topics}
	u := base + "/v1/events?" + q.Encode()
	if extra != "" {
		u += "&" + extra
	}
	return u
}

// nextTopicItem reads the next event, which must be an item, and returns
// its topic and seq.
func nextTopicItem(t *testing.T, s *stream) (wire.TopicItem, wire.Event) {
	t.Helper()
	ev, ok := s.next(t, 10*time.Second)
	if !ok {
		t.Fatal("stream ended")
	}
	if ev.Type != wire.EventItem {
		t.Fatalf("event %q %s, want an item", ev.Type, ev.Data)
	}
	var d wire.TopicItem
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	if h := baton.HashItem(d.Topic, baton.Update{ID: d.ID, Value: d.Value, MsgID: d.MsgID, Deleted: d.Deleted}); h != d.Hash {
		t.Fatalf("%s/%d: hash %s, recomputed %s", d.Topic, d.Seq, d.Hash, h)
	}
	return d, ev
}

// TestMultiStreamResume follows named topics and a pattern on one stream,
// then resumes from an event's id on a new stream: every topic continues
// exactly after its own position.
func TestMultiStreamResume(t *testing.T) {
	forEachWriter(t, testMultiStreamResume)
}

func testMultiStreamResume(t *testing.T, writer string) {
	e := newEnv(t, nil, hub.Options{}, Config{SSEWriter: writer})
	pubs := map[string]*publisher{}
	for _, tp := range []string{"a", "b", "quotes.x", "quotes.y", "other"} {
		pubs[tp] = newPublisher(t, e.store, tp)
		pubs[tp].publish(3)
	}
	s := openStream(t, nethttp.DefaultClient, multiURL(e.url, []string{"b", "a", "quotes.*", "a"}, "positions=b:1,quotes.y:2"), "").run()
	want := map[string]uint64{"a": 0, "b": 1, "quotes.x": 0, "quotes.y": 2}
	got := map[string]uint64{}
	var lastID string
	for range 3 + 2 + 3 + 1 {
		d, ev := nextTopicItem(t, s)
		if next := max(got[d.Topic], want[d.Topic]) + 1; d.Seq != next {
			t.Fatalf("%s: seq %d, want %d", d.Topic, d.Seq, next)
		}
		got[d.Topic] = d.Seq
		lastID = string(ev.ID)
	}
	for tp, seq := range got {
		if seq != 3 {
			t.Fatalf("%s at %d, want 3 (%v)", tp, seq, got)
		}
	}
	s.close()

	// A topic created later, and more items: the resumed stream sends
	// each topic's items after its own position, and nothing of "other".
	for _, tp := range []string{"a", "quotes.y"} {
		pubs[tp].publish(2)
	}
	pubs["quotes.z"] = newPublisher(t, e.store, "quotes.z")
	pubs["quotes.z"].publish(1)
	r := openStream(t, nethttp.DefaultClient, multiURL(e.url, []string{"b", "a", "quotes.*", "a"}, ""), lastID).run()
	want = map[string]uint64{"a": 5, "quotes.y": 5, "quotes.z": 1}
	got = map[string]uint64{"a": 3, "quotes.y": 3}
	for range 5 {
		d, _ := nextTopicItem(t, r)
		if d.Seq != got[d.Topic]+1 {
			t.Fatalf("%s: seq %d after %d", d.Topic, d.Seq, got[d.Topic])
		}
		got[d.Topic] = d.Seq
	}
	for tp, seq := range want {
		if got[tp] != seq {
			t.Fatalf("%s at %d, want %d", tp, got[tp], seq)
		}
	}
}

// TestMultiStreamPatternFindsNewTopic opens a pattern stream before its
// topic exists.
func TestMultiStreamPatternFindsNewTopic(t *testing.T) {
	e := newEnv(t, nil, hub.Options{Recheck: 50 * time.Millisecond}, Config{})
	s := openStream(t, nethttp.DefaultClient, multiURL(e.url, []string{"quotes.*"}, ""), "").run()
	p := newPublisher(t, e.store, "quotes.new")
	p.publish(2)
	for want := uint64(1); want <= 2; want++ {
		d, ev := nextTopicItem(t, s)
		if d.Topic != "quotes.new" || d.Seq != want {
			t.Fatalf("got %s/%d, want quotes.new/%d", d.Topic, d.Seq, want)
		}
		sp, err := wire.ParseStreamID(string(ev.ID), nil)
		if err != nil || sp.Found["quotes.new"] != want {
			t.Fatalf("id %q: %+v %v", ev.ID, sp, err)
		}
	}
}

// TestMultiStreamResetAndDelete: a reset and a deletion are per topic;
// the other topics go on.
func TestMultiStreamResetAndDelete(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	a, b := newPublisher(t, e.store, "a"), newPublisher(t, e.store, "b")
	a.publish(10)
	b.publish(1)
	if _, err := e.store.Trim(context.Background(), "a", 6); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, nethttp.DefaultClient, multiURL(e.url, []string{"a", "b"}, "positions=a:2"), "").run()
	resets := 0
	seen := map[string]uint64{}
	for len(seen) < 2 || seen["a"] < 10 {
		ev, _ := s.next(t, 10*time.Second)
		switch ev.Type {
		case wire.EventReset:
			var r wire.TopicReset
			if err := json.Unmarshal(ev.Data, &r); err != nil || r.Topic != "a" || r.Earliest != 6 {
				t.Fatalf("reset %s: %v", ev.Data, err)
			}
			sp, err := wire.ParseStreamID(string(ev.ID), []string{"a", "b"})
			if err != nil || sp.Named[0] != 5 {
				t.Fatalf("reset id %q: %+v %v", ev.ID, sp, err)
			}
			resets++
		case wire.EventItem:
			var d wire.TopicItem
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Topic == "a" && d.Seq < 6 {
				t.Fatalf("a/%d after a reset to 6", d.Seq)
			}
			seen[d.Topic] = d.Seq
		}
	}
	if resets != 1 {
		t.Fatalf("%d resets", resets)
	}
	e.hub.EndTopic("a")
	ev, _ := s.next(t, 10*time.Second)
	if ev.Type != wire.EventDeleted || !strings.Contains(string(ev.Data), `"topic":"a"`) {
		t.Fatalf("event %q %s, want a deleted a", ev.Type, ev.Data)
	}
	b.publish(1)
	d, _ := nextTopicItem(t, s)
	if d.Topic != "b" || d.Seq != 2 {
		t.Fatalf("got %s/%d after a's deletion, want b/2", d.Topic, d.Seq)
	}
}

// TestMultiStreamBadInput: every bad request is a 4xx JSON error.
func TestMultiStreamBadInput(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	many := make([]string, wire.MaxStreamTopics+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	id := string(wire.NewStreamID([]string{"a", "b"}, []uint64{1, 2}).Bytes())
	for _, c := range []struct {
		name, url, lastID string
		status            int
		code              string
	}{
		{"no topic", "/v1/events", "", 400, baton.CodeInvalid},
		{"bad topic", "/v1/events?topic=a%20b", "", 400, baton.CodeInvalid},
		{"bad pattern", "/v1/events?topic=quo*tes", "", 400, baton.CodeInvalid},
		{"too many topics", strings.TrimPrefix(multiURL("", many, ""), ""), "", 413, baton.CodeTooLarge},
		{"bad positions", "/v1/events?topic=a&positions=a:x", "", 400, baton.CodeInvalid},
		{"positions of another topic", "/v1/events?topic=a&positions=b:1", "", 400, baton.CodeInvalid},
		{"bad Last-Event-ID", "/v1/events?topic=a", "7", 400, baton.CodeInvalid},
		{"Last-Event-ID of other topics", "/v1/events?topic=a&topic=c", id, 400, baton.CodeInvalid},
		{"bad snapshot with a pattern", "/v1/events?topic=a&topic=quotes.*&snapshot=yes", "", 400, baton.CodeInvalid},
		{"bad snapshot", "/v1/events?topic=a&snapshot=2", "", 400, baton.CodeInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			var er wire.ErrorResponse
			hdr := map[string]string{}
			if c.lastID != "" {
				hdr["Last-Event-ID"] = c.lastID
			}
			resp := e.do("GET", c.url, nil, hdr, &er)
			if resp.StatusCode != c.status || er.Error == nil || er.Error.Code != c.code {
				t.Fatalf("status %d %+v, want %d %s", resp.StatusCode, er.Error, c.status, c.code)
			}
		})
	}
	if n := e.srv.Streams(); n != 0 {
		t.Fatalf("%d streams open after refusals", n)
	}
}

// TestMultiStreamAccess: each topic needs the subscribe right, and a
// pattern must lie within the token's rights.
func TestMultiStreamAccess(t *testing.T) {
	a := newAuthEnv(t, Config{})
	tok := a.token(time.Hour, auth.Rights{Subscribe: []string{"quotes.*", "news"}})
	for _, c := range []struct {
		query  string
		status int
	}{
		{"topic=quotes.a&topic=news", 200},
		{"topic=quotes.*", 200},
		{"topic=quotes.sh.*", 200},
		{"topic=quotes.a&topic=secret", 403},
		{"topic=*", 403},
		{"topic=news.*", 403},
		{"topic=quotes.a", 200},
	} {
		if status, code := a.call("GET", "/v1/events?"+c.query, tok, "header"); status != c.status {
			t.Errorf("%s: %d %s, want %d", c.query, status, code, c.status)
		}
	}
}
