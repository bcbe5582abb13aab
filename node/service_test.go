package node_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/node"
)

// TestService: the node keeps baton.Service's contract: a second Start
// fails, concurrent Closes all return once it has left the membership,
// Start after Close fails with ErrClosed, and Close without Start joins
// nothing and leaves nothing.
func TestService(t *testing.T) {
	st := memstore.New(nil)
	n, err := node.New(st, node.Config{Node: "n1", Addr: "n1:1", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
			if ms, err := st.Members(context.Background()); err != nil || len(ms) != 0 {
				t.Errorf("Close returned with members %v, %v", ms, err)
			}
		})
	}
	wg.Wait()
	if err := n.Start(context.Background()); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	idle, err := node.New(st, node.Config{Node: "n2", Addr: "n2:1", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal("Close without Start:", err)
	}
}
