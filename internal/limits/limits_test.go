package limits_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/limits"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRatePerClient(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := limits.New(limits.Config{Rate: 10, Burst: 5, Now: c.now})
	for i := range 5 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("6th request at once: %v, retry after %v; want refused, about 100ms", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client is limited by the first")
	}
	c.t = c.t.Add(100 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("a refused after its bucket refilled one token")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a refused request took a token (it must not), or the bucket overfilled")
	}
}

func TestStreamsPerClient(t *testing.T) {
	l := limits.New(limits.Config{Streams: 2})
	done1, ok1 := l.OpenStream("a")
	_, ok2 := l.OpenStream("a")
	_, ok3 := l.OpenStream("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("streams of a: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := l.OpenStream("b"); !ok {
		t.Fatal("b limited by a's streams")
	}
	done1()
	done1() // idempotent
	if _, ok := l.OpenStream("a"); !ok {
		t.Fatal("a stream that ended still counts")
	}
	if _, ok := l.OpenStream("a"); ok {
		t.Fatal("ending one stream twice freed two places")
	}
}

// TestClientsBounded: a flood of new client keys keeps at most MaxClients,
// and a client holding streams is never forgotten (its count would reset).
func TestClientsBounded(t *testing.T) {
	l := limits.New(limits.Config{Rate: 1, Streams: 1, MaxClients: 100})
	if _, ok := l.OpenStream("holder"); !ok {
		t.Fatal("first stream refused")
	}
	for i := range 10000 {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if n := l.Clients(); n > 100 {
		t.Fatalf("%d clients tracked, bound 100", n)
	}
	if _, ok := l.OpenStream("holder"); ok {
		t.Fatal("the holder's stream was forgotten under the flood")
	}
}

func TestNoLimits(t *testing.T) {
	l := limits.New(limits.Config{})
	for range 1000 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatal("limited without a rate")
		}
		if _, ok := l.OpenStream("a"); !ok {
			t.Fatal("limited without a stream cap")
		}
	}
}
