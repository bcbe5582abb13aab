package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/wire"
)

// TestPublishRetriesWithSameMsgID: a node that fails makes the client try
// another, with the same msg ids, so the retry cannot duplicate.
func TestPublishRetriesWithSameMsgID(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, string(b))
		mu.Unlock()
		w.WriteHeader(503)
		fmt.Fprint(w, `{"error":{"code":"unavailable","message":"store unavailable"}}`)
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var us []baton.Update
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, string(b))
		mu.Unlock()
		json.Unmarshal(b, &us)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"items":[{"seq":7,"hash":"%064x","msg_id":%q}]}`, 1, us[0].MsgID)
	}))
	defer up.Close()
	c, err := client.New([]string{up.URL, down.URL}, client.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.Publish(context.Background(), "t", []baton.Update{{ID: "a", Value: json.RawMessage("1")}})
	if err != nil || len(rs) != 1 || rs[0].Seq != 7 {
		t.Fatalf("publish: %v %v", rs, err)
	}
	if len(seen) != 2 || seen[0] != seen[1] || !strings.Contains(seen[0], `"msg_id":"srv-`) {
		t.Fatalf("attempts differ or carry no msg id: %q", seen)
	}
}

// TestPublishFollowsHolder: once an answer names the topic's lease holder
// (Baton-Holder), the client publishes the topic there; another topic is
// not affected, a hint naming no node of the client's is ignored, and a
// holder that stops answering is forgotten.
func TestPublishFollowsHolder(t *testing.T) {
	var toA, toB atomic.Int64
	var holderHost atomic.Value // what A names
	answer := func(w http.ResponseWriter, r *http.Request) {
		var us []baton.Update
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &us)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"items":[{"seq":1,"hash":"%064x","msg_id":%q}]}`, 1, us[0].MsgID)
	}
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toB.Add(1)
		answer(w, r) // the holder: no hint
	}))
	defer b.Close()
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toA.Add(1)
		if strings.Contains(r.URL.Path, "/quotes/") {
			w.Header().Set(wire.HolderHeader, holderHost.Load().(string))
		}
		answer(w, r)
	}))
	defer a.Close()
	holderHost.Store("127.0.0.1:1") // no node of the client's
	var retries atomic.Int64
	c, err := client.New([]string{a.URL, b.URL}, client.Options{Backoff: time.Millisecond, MaxBackoff: time.Minute,
		OnRetry: func(string, error) { retries.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	publish := func(topic string, n int) {
		t.Helper()
		for range n {
			if _, err := c.Publish(ctx, topic, []baton.Update{{ID: "a", Value: json.RawMessage("1")}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("quotes", 10)
	if toA.Load() != 5 || toB.Load() != 5 {
		t.Fatalf("with a hint naming no node of its own: %d to a, %d to b; want 5 each (in turn)", toA.Load(), toB.Load())
	}
	holderHost.Store(strings.TrimPrefix(b.URL, "http://"))
	publish("quotes", 2) // whichever goes to a learns the hint
	toA.Store(0)
	toB.Store(0)
	publish("quotes", 10)
	if toA.Load() != 0 || toB.Load() != 10 {
		t.Fatalf("after a named b as the holder: %d to a, %d to b; want all 10 to b", toA.Load(), toB.Load())
	}
	publish("other", 10)
	if toA.Load() != 5 {
		t.Fatalf("another topic: %d of 10 to a, want 5 (in turn)", toA.Load())
	}
	// The holder is gone: its publishes go to a, and a's hint, naming it
	// still, is not followed while it is down (one failed attempt only).
	b.Close()
	toA.Store(0)
	publish("quotes", 3)
	if toA.Load() != 3 || retries.Load() != 1 {
		t.Fatalf("with the holder gone: %d of 3 to a, %d failed attempts; want 3 and 1", toA.Load(), retries.Load())
	}
}

// TestPublishDoesNotRetryBadInput: a 4xx is the caller's problem.
func TestPublishDoesNotRetryBadInput(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"code":"invalid","message":"id: missing"}}`)
	}))
	defer srv.Close()
	c, _ := client.New([]string{srv.URL}, client.Options{})
	_, err := c.Publish(context.Background(), "t", []baton.Update{{ID: "", Value: json.RawMessage("1")}})
	var ae *wire.Error
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "invalid" || n.Load() != 1 {
		t.Fatalf("err %v after %d attempts", err, n.Load())
	}
}

// TestSubscribeResumesAndDetectsGaps: the client resumes from the last seq
// on the next node, drops what it has seen, and refuses a gap.
func TestSubscribeResumesAndDetectsGaps(t *testing.T) {
	item := func(seq int) string {
		return fmt.Sprintf("id: %d\nevent: item\ndata: {\"seq\":%d,\"id\":\"k\",\"value\":1,\"hash\":\"%064x\",\"epoch\":1,\"publisher\":\"p\"}\n\n", seq, seq, seq)
	}
	var lastIDs []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		call := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch call {
		case 1: // 1..3 then the connection ends
			fmt.Fprint(w, item(1)+item(2)+item(3))
		case 2: // resends 3 (at least once on the wire), then 4, then skips 5
			fmt.Fprint(w, item(3)+item(4)+item(6))
		}
	}))
	defer srv.Close()
	c, _ := client.New([]string{srv.URL}, client.Options{Backoff: time.Millisecond})
	var got []uint64
	err := c.Subscribe(context.Background(), "t", 0, func(e client.Event) error {
		got = append(got, e.Item.Seq)
		return nil
	})
	if !errors.Is(err, client.ErrGap) {
		t.Fatalf("err = %v, want ErrGap", err)
	}
	if fmt.Sprint(got) != "[1 2 3 4]" || fmt.Sprint(lastIDs) != "[0 3]" {
		t.Fatalf("got %v with Last-Event-IDs %v", got, lastIDs)
	}
}

// TestSubscribeLeavesSilentNode: a node that accepts the stream but sends
// nothing (paused) is left after StreamIdle.
func TestSubscribeLeavesSilentNode(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // silent
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: 1\nevent: item\ndata: {\"seq\":1,\"hash\":\"%064x\"}\n\n", 1)
	}))
	defer srv.Close()
	c, _ := client.New([]string{srv.URL}, client.Options{StreamIdle: 100 * time.Millisecond, Backoff: time.Millisecond})
	stop := errors.New("stop")
	err := c.Subscribe(context.Background(), "t", 0, func(e client.Event) error { return stop })
	if !errors.Is(err, stop) || calls.Load() != 2 {
		t.Fatalf("err %v after %d connections", err, calls.Load())
	}
}

// TestSubscribeLineEnds: the client reads a stream whose lines end with
// CR, CRLF or LF, after a byte order mark, as the event stream format
// allows (its old line scanner saw a CR-ended stream as one endless line).
func TestSubscribeLineEnds(t *testing.T) {
	for name, eol := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR": "\r"} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "\ufeff: hello"+eol+"retry: 1000"+eol+eol)
				for seq := 1; seq <= 2; seq++ {
					fmt.Fprintf(w, "id: %d%sevent: item%sdata: {\"seq\":%d,\"id\":\"k\",%sdata: \"value\":1}%s%s", seq, eol, eol, seq, eol, eol, eol)
				}
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer srv.Close()
			c, _ := client.New([]string{srv.URL}, client.Options{})
			var got []uint64
			done := errors.New("done")
			err := c.Subscribe(context.Background(), "t", 0, func(e client.Event) error {
				if string(e.Item.Value) != "1" {
					t.Errorf("value %q", e.Item.Value)
				}
				got = append(got, e.Item.Seq)
				if len(got) == 2 {
					return done
				}
				return nil
			})
			if err != done || got[0] != 1 || got[1] != 2 {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

// TestHolder: the first node that answers says who holds the lease; a
// node that is down is passed over.
func TestHolder(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	locks := map[string]baton.LockState{
		"other":  {Topic: "other", Held: true, Lease: baton.Lease{Holder: "n9", Epoch: 9}},
		"quotes": {Topic: "quotes", Held: true, Lease: baton.Lease{Holder: "n2", Epoch: 4}},
		"idle":   {Topic: "idle", Held: false, Lease: baton.Lease{Holder: "n1", Epoch: 2}},
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topic, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/topics/"), "/lock")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(locks[topic])
	}))
	defer up.Close()
	c, err := client.New([]string{down.URL, up.URL}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{"quotes": "n2 4", "idle": " 0", "none": " 0"} {
		h, e, err := c.Holder(context.Background(), topic)
		if err != nil || fmt.Sprintf("%s %d", h, e) != want {
			t.Errorf("Holder(%s) = %q %d %v, want %q", topic, h, e, err, want)
		}
	}
}

// TestTopicsQuery: Topics asks for the page it is given, and only for
// what is set.
func TestTopicsQuery(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.RequestURI())
		_ = json.NewEncoder(w).Encode(wire.TopicsResponse{Topics: []string{"b"}, Next: "b"})
	}))
	defer srv.Close()
	c, err := client.New([]string{srv.URL}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Topics(context.Background(), "", client.TopicsQuery{After: "a b", Limit: 5, Status: true})
	if err != nil || resp.Next != "b" {
		t.Fatalf("%+v %v", resp, err)
	}
	if _, err := c.Topics(context.Background(), srv.URL, client.TopicsQuery{}); err != nil {
		t.Fatal(err)
	}
	if want := "/v1/topics?after=a+b&limit=5&status=true /v1/topics"; strings.Join(got, " ") != want {
		t.Errorf("asked %q, want %q", strings.Join(got, " "), want)
	}
}

// TestDrainAndUndrain: the client drains and undrains a node through the
// real HTTP API, which refuses a DELETE that carries a body.
func TestDrainAndUndrain(t *testing.T) {
	var calls []bool
	srv, err := bhttp.NewServer(bhttp.Config{Store: memstore.New(nil), Hub: hub.New(memstore.New(nil), hub.Options{}),
		Drain: func(on bool) wire.Drain {
			calls = append(calls, on)
			return wire.Drain{Node: "n1", Draining: on}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, _ := client.New([]string{ts.URL}, client.Options{})
	for _, on := range []bool{true, false} {
		d, err := c.Drain(context.Background(), ts.URL, on)
		if err != nil || d.Draining != on {
			t.Fatalf("drain %v: %+v, %v", on, d, err)
		}
	}
	if len(calls) != 2 || !calls[0] || calls[1] {
		t.Fatalf("the node was asked %v", calls)
	}
}
