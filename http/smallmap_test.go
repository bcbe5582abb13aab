package http

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestSmallMap runs random operations on a smallMap and a Go map side by
// side, across the move from slice to map.
func TestSmallMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var sm smallMap[int]
		want := map[string]int{}
		keys := 1 + rng.IntN(3*smallMapSlots)
		for i := range 200 {
			k := fmt.Sprint("t", rng.IntN(keys))
			switch rng.IntN(3) {
			case 0, 1:
				sm.set(k, i)
				want[k] = i
			case 2:
				sm.del(k)
				delete(want, k)
			}
			wv, wok := want[k]
			if v, ok := sm.get(k); ok != wok || v != wv || sm.has(k) != wok {
				t.Fatalf("round %d op %d: get %s = %d, %v; want %v", round, i, k, v, ok, want)
			}
			if sm.len() != len(want) {
				t.Fatalf("round %d op %d: len %d, want %d", round, i, sm.len(), len(want))
			}
		}
		if got := maps.Collect(sm.all()); !maps.Equal(got, want) {
			t.Fatalf("round %d: all %v, want %v", round, got, want)
		}
	}
}
