package http

import (
	"context"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
)

// BenchmarkPostItem is the server's own cost of one single-item publish
// (POST /v1/topics/{topic}/items with a msg id), on an in-memory store and
// without the network: routing, middleware, decoding, the receipt
// (docs/benchmarks.md, "SQLite latency and single-item ingest").
func BenchmarkPostItem(b *testing.B) {
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{})
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	srv := mustServer(b, Config{Store: st, Hub: h})
	defer srv.Close()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := strconv.FormatInt(n.Add(1), 10)
			body := `{"id":"k.` + k + `","value":{"n":` + k + `},"msg_id":"m-` + k + `"}`
			r := httptest.NewRequest(nethttp.MethodPost, "/v1/topics/t/items", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != nethttp.StatusCreated {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
