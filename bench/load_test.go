package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/baton-pub/baton/wire"
)

// TestPostersFollowHolder: once an answer names the topic's lease holder,
// every poster of the topic sends there; with spread, each keeps to its
// node; a request to the holder that fails sends them back to their own.
func TestPostersFollowHolder(t *testing.T) {
	var toA, toB atomic.Int64
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toB.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer b.Close()
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toA.Add(1)
		w.Header().Set(wire.HolderHeader, strings.TrimPrefix(b.URL, "http://"))
		w.WriteHeader(http.StatusCreated)
	}))
	defer a.Close()
	ctx := context.Background()
	batch := Batch{Src: "s", First: 1, Due: []int64{1}}
	for _, spread := range []bool{false, true} {
		toA.Store(0)
		toB.Store(0)
		ps := newPosters(http.DefaultClient, []string{a.URL, b.URL}, "t", spread)
		for range 4 {
			if err := ps[0].Send(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		if want := map[bool][2]int64{false: {1, 3}, true: {4, 0}}[spread]; toA.Load() != want[0] || toB.Load() != want[1] {
			t.Fatalf("spread %v: %d to a, %d to b; want %v", spread, toA.Load(), toB.Load(), want)
		}
	}
	ps := newPosters(http.DefaultClient, []string{a.URL, b.URL}, "t", false)
	if err := ps[0].Send(ctx, batch); err != nil { // learns b
		t.Fatal(err)
	}
	b.Close()
	if err := ps[0].Send(ctx, batch); err == nil {
		t.Fatal("a send to the closed holder succeeded")
	}
	toA.Store(0)
	if err := ps[0].Send(ctx, batch); err != nil || toA.Load() != 1 {
		t.Fatalf("after the holder failed: %v, %d to a; want its own node again", err, toA.Load())
	}
}
