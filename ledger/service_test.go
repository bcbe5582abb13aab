package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/ledger"
)

// TestWitnessService: the witness keeps baton.Service's contract: Follow
// needs Start, a second Start fails (it used to replace the context the
// followed topics run under, which Close then never cancelled), concurrent
// Closes all return once it has stopped, and Start after Close fails with
// ErrClosed.
func TestWitnessService(t *testing.T) {
	dir := t.TempDir()
	key, err := ledger.LoadOrCreateKey(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: memstore.New(nil), Key: key, Copies: copiesIn(t, filepath.Join(dir, "ledger")), Dir: filepath.Join(dir, "ledger")})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Follow("t"); err == nil {
		t.Fatal("Follow before Start succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := w.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := w.Follow("t"); err != nil {
		t.Fatal("Follow after Start's context ended:", err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := w.Start(context.Background()); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}
