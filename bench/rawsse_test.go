package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/baton-pub/baton/wire"
)

// TestRawSSEFrames: the fan-out ceiling sends Baton's item events, read by
// the one event-stream reader, in the order posted.
func TestRawSSEFrames(t *testing.T) {
	srv := httptest.NewServer(newBroadcaster())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/topics/t/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The retry hint comes first: once it is read, the stream is registered.
	first := make([]byte, len("retry: 1000\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "retry: 1000\n\n" {
		t.Fatalf("first bytes %q, %v", first, err)
	}
	post, err := http.Post(srv.URL+"/v1/topics/t/items", "application/json",
		strings.NewReader(`[{"id":"a","value":{"t":1},"msg_id":"m1"},{"id":"b","value":"x","msg_id":"m2"}]`))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	er := wire.NewEventReader(resp.Body, 4096)
	if post.StatusCode != http.StatusCreated {
		t.Fatalf("post: %s", post.Status)
	}
	for i, want := range []wire.Item{{Seq: 1, ID: "a", Value: []byte(`{"t":1}`), MsgID: "m1"}, {Seq: 2, ID: "b", Value: []byte(`"x"`), MsgID: "m2"}} {
		ev, err := er.Next()
		if err != nil {
			t.Fatal(err)
		}
		d, err := ev.Item()
		if err != nil {
			t.Fatal(err)
		}
		if seq, _ := ev.Seq(); seq != want.Seq || d.Seq != want.Seq || d.ID != want.ID || string(d.Value) != string(want.Value) || d.MsgID != want.MsgID || d.Epoch != 1 || d.Publisher != "raw" {
			t.Fatalf("event %d: %+v (id %s)", i, d, ev.ID)
		}
	}
}
