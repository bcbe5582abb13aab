package hub

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// TestFrameData: Data is the item's JSON object within its SSE frame,
// whatever the number of the seq's digits and the encoder's path.
func TestFrameData(t *testing.T) {
	for _, seq := range []uint64{1, 9, 10, 99, 100, 123456789} {
		for _, value := range []string{`{"px":1}`, `"caf\u00e9 <b>"`} {
			p := baton.Published{Item: baton.Item{Topic: "t", Seq: seq, ID: "k", Value: json.RawMessage(value), MsgID: "m"}, Epoch: 2, Publisher: "n"}
			f, err := NewFrame(p)
			if err != nil {
				t.Fatal(err)
			}
			var got wire.Item
			if err := json.Unmarshal(f.Data(), &got); err != nil || got.Seq != seq || f.Data()[0] != '{' || f.Data()[len(f.Data())-1] != '}' {
				t.Fatalf("seq %d: data %q: %+v %v", seq, f.Data(), got, err)
			}
		}
	}
}

// TestWatchTopics: a watcher gets every topic of the first listing, then
// the topics created later, until it is closed.
func TestWatchTopics(t *testing.T) {
	st := memstore.New(nil)
	newPublisher(t, st, "a").publish(1)
	h := startHub(t, st, Options{Recheck: 20 * time.Millisecond})
	var mu sync.Mutex
	var seen []string
	w, err := h.WatchTopics(func(topics []string) {
		mu.Lock()
		seen = append(seen, topics...)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	has := func(topic string) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if !slices.Contains(seen, topic) {
				return fmt.Errorf("seen %v", seen)
			}
			return nil
		}
	}
	poll.Until(t, 5*time.Second, "the existing topic", has("a"))
	newPublisher(t, st, "b").publish(1)
	poll.Until(t, 5*time.Second, "the new topic", has("b"))
	// A second watcher gets the whole listing, not only what is new.
	var second []string
	var mu2 sync.Mutex
	w2, err := h.WatchTopics(func(topics []string) {
		mu2.Lock()
		second = append(second, topics...)
		mu2.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	poll.Until(t, 5*time.Second, "the listing of the second watcher", func() error {
		mu2.Lock()
		defer mu2.Unlock()
		if !slices.Contains(second, "a") || !slices.Contains(second, "b") {
			return fmt.Errorf("second watcher saw %v", second)
		}
		return nil
	})
	w.Close()
	newPublisher(t, st, "c").publish(1)
	poll.Until(t, 5*time.Second, "c seen by the second watcher", func() error {
		mu2.Lock()
		defer mu2.Unlock()
		if !slices.Contains(second, "c") {
			return fmt.Errorf("second watcher saw %v", second)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	// A call under way when Close returned listed the topics before c.
	if slices.Contains(seen, "c") {
		t.Fatalf("closed watcher told of a later topic: %v", seen)
	}
}
