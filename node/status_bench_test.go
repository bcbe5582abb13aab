package node

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkStatus times the status reads at 10,000 topics on SQLite, with
// no elector running (the node is not started, its topics listed once as
// discover would): what the status path itself costs, apart from the load
// of the node around it (docs/benchmarks.md, "Status at many topics").
//
//	go test -run '^$' -bench Status -benchtime 100x ./node/
func BenchmarkStatus(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "n.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	for i := range 10000 {
		if _, err := st.Append(ctx, fmt.Sprintf("t%05d", i), []baton.Update{u}); err != nil {
			b.Fatal(err)
		}
	}
	n, err := New(st, Config{Node: "a", Addr: "a:1", TTL: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	topics, err := st.Topics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n.topics.set(topics, time.Now())
	b.Run("list", func(b *testing.B) { // what a listing of the store costs, for comparison
		for b.Loop() {
			if _, err := st.Topics(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, page := range []int{0, 100} {
		b.Run(fmt.Sprintf("topics=%d", page), func(b *testing.B) {
			for b.Loop() {
				if _, err := n.Status(ctx, page); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
