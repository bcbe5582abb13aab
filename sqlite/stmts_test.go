package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// A statement a write transaction runs as text is prepared once the
// transaction has ended, and runs prepared from then on; past maxPrepared
// texts the rest run as text.
func TestWritesLearnStatements(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const q = qSuccessor // the acquire's, not among hotWrites
	p := s.hot[s.ldb]
	if p.lookup(q) != nil {
		t.Fatal("the acquire's statement is prepared at open: pick another for this test")
	}
	nl, err := s.AcquireNode(ctx, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "t", nl); err != nil {
		t.Fatal(err)
	}
	st := p.lookup(q)
	if st == nil {
		t.Fatal("the acquire's statement was not prepared after its transaction")
	}
	if err := s.Release(ctx, mustLock(t, s, "t"), baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "t", nl); err != nil {
		t.Fatal(err)
	}
	if p.lookup(q) != st {
		t.Fatal("the statement was prepared again")
	}

	// Statements with values in them stop being learned at the bound.
	for i := range maxPrepared + 10 {
		err := s.writeLease(ctx, "t", func(ctx context.Context, tx *txn) (baton.Signal, error) {
			_, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT %d", i))
			return 0, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(*p.m.Load()); n != maxPrepared {
		t.Fatalf("%d statements prepared, want the bound %d", n, maxPrepared)
	}
}

func mustLock(t *testing.T, s *Store, topic string) baton.Lease {
	t.Helper()
	st, err := s.Lock(context.Background(), topic)
	if err != nil || !st.Held {
		t.Fatalf("lock of %s: %+v, %v", topic, st, err)
	}
	return st.Lease
}
