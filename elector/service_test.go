package elector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
	"github.com/baton-pub/baton/internal/memstore"
)

// TestService: the elector keeps baton.Service's contract. It runs on after
// Start's context ends (it takes the free lease), a second Start fails,
// Close is idempotent and waits for the runner, Start after Close fails
// with ErrClosed, and Close without Start is fine.
func TestService(t *testing.T) {
	running, stopped := make(chan struct{}), make(chan struct{})
	run := func(ctx context.Context, _ baton.Lease) error {
		close(running)
		<-ctx.Done()
		close(stopped)
		return nil
	}
	e, err := elector.New(elector.Config{Store: memstore.New(nil), Topic: "t", Node: "n1", TTL: time.Hour, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-running // the lease is taken after Start's context ended
	if err := e.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Close returned before the runner stopped")
	}
	if err := e.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := e.Start(context.Background()); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	idle, err := elector.New(elector.Config{Store: memstore.New(nil), Topic: "t", Node: "n1", TTL: time.Hour, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal("Close without Start:", err)
	}
}
