package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/node"
)

// BenchmarkStatus times the status reads at 10,000 topics on SQLite, with
// no elector running (the node is not started): what the status path
// itself costs, apart from the load of the node around it
// (docs/benchmarks.md, "Status at many topics").
//
//	go test -run '^$' -bench Status -benchtime 100x ./node/
func BenchmarkStatus(b *testing.B) {
	ctx := context.Background()
	st := open(b, filepath.Join(b.TempDir(), "n.db"))
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	for i := range 10000 {
		if _, err := st.Append(ctx, fmt.Sprintf("t%05d", i), []baton.Update{u}); err != nil {
			b.Fatal(err)
		}
	}
	n, err := node.New(st, node.Config{Node: "a", Addr: "a:1", TTL: time.Second})
	if err != nil {
		b.Fatal(err)
	}
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
