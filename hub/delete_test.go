package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
)

// A topic deleted through another handle of the store (another node) ends
// the terminals that had read it with ErrTopicDeleted: the feed sees the
// cursor go back, whatever the node's topic listing saw. EndTopic does
// the same at once.
func TestTerminalsOfADeletedTopicEnd(t *testing.T) {
	st := memstore.New(nil)
	h := startHub(t, st, Options{})
	p := newPublisher(t, st, "t")
	p.publish(3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	term, err := h.Subscribe(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	var got uint64
	for got < 3 {
		ev, err := term.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = ev.Frames[len(ev.Frames)-1].Item.Seq
	}
	if _, err := st.Handle().DeleteTopic(ctx, "t", baton.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Next(ctx); !errors.Is(err, ErrTopicDeleted) {
		t.Fatalf("Next after the delete: %v, want ErrTopicDeleted", err)
	}

	// EndTopic, as the node that served the delete calls it.
	p2 := newPublisher(t, st, "u")
	p2.publish(1)
	term2, err := h.Subscribe(ctx, "u", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer term2.Close()
	if _, err := term2.Next(ctx); err != nil {
		t.Fatal(err)
	}
	h.EndTopic("u")
	if _, err := term2.Next(ctx); !errors.Is(err, ErrTopicDeleted) {
		t.Fatalf("Next after EndTopic: %v, want ErrTopicDeleted", err)
	}
}
