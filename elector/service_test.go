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

// TestSessionService: the session keeps baton.Service's contract: it holds
// its node lease after Start's context ends, a second Start fails, Close
// releases the node lease and is idempotent, Start after Close fails.
func TestSessionService(t *testing.T) {
	st := memstore.New(nil)
	s, err := elector.NewSession(elector.SessionConfig{Store: st, Node: "n1", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, _, ok := s.Current(); !ok {
		t.Fatal("no node lease after Start")
	}
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ls, err := st.NodeLeases(context.Background()); err != nil || len(ls) != 0 {
		t.Fatalf("node leases after Close: %+v, %v: want none (released)", ls, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

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
	st := memstore.New(nil)
	sess := session(t, st, baton.SystemClock{}, "n1", time.Hour)
	e, err := elector.New(elector.Config{Store: st, Session: sess, Topic: "t", Run: run})
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
	idle, err := elector.New(elector.Config{Store: st, Session: sess, Topic: "t", Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal("Close without Start:", err)
	}
}
