package forward_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/forward"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
)

var key = []byte(strings.Repeat("k", forward.KeySize))

// holder is a real API server with the nodes' key: the lease holder's node.
type holder struct {
	store *memstore.Store
	addr  string
	reqs  atomic.Int64 // forwarded appends it received
}

func newHolder(t *testing.T, k []byte) *holder {
	t.Helper()
	return newHolderTLS(t, k, false)
}

// newHolderTLS is newHolder serving TLS, with a certificate the forwarder
// cannot verify (httptest's own).
func newHolderTLS(t *testing.T, k []byte, tlsOn bool) *holder {
	t.Helper()
	h := &holder{store: memstore.New(nil)}
	hb := hub.New(h.store, hub.Options{})
	if err := hb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := bhttp.NewServer(bhttp.Config{Store: h.store, Hub: hb, ForwardKey: k})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/internal/") {
			h.reqs.Add(1)
		}
		srv.ServeHTTP(w, r)
	}))
	if tlsOn {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
		hb.Close()
	})
	h.addr = strings.TrimPrefix(strings.TrimPrefix(ts.URL, "https://"), "http://")
	return h
}

// local is the forwarding node's own store, and what it appended.
type local struct {
	store *memstore.Store
	calls atomic.Int64
}

func (l *local) append(ctx context.Context, topic string, ups []baton.Update) ([]baton.Receipt, error) {
	l.calls.Add(1)
	return l.store.Append(ctx, topic, ups)
}

// outcomes records Config.Observe.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) observe(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, s)
}

func (o *outcomes) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) == 0 {
		return ""
	}
	return o.got[len(o.got)-1]
}

func updates(msgIDs ...string) []baton.Update {
	var ups []baton.Update
	for _, m := range msgIDs {
		ups = append(ups, baton.Update{ID: "k", Value: []byte(`{"m":"` + m + `"}`), MsgID: m})
	}
	return ups
}

func newForwarder(t *testing.T, k []byte, route string, l *local, o *outcomes, now func() time.Time, timeout time.Duration) *forward.Forwarder {
	t.Helper()
	f, err := forward.New(forward.Config{Node: "n2", Key: k, Local: l.append, Observe: o.observe, Now: now, Timeout: timeout,
		Route: func(topic string) (string, bool) { return route, route != "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestForwarded: the holder's node appends, and its receipts are the
// answer; nothing is appended here.
func TestForwarded(t *testing.T) {
	h := newHolder(t, key)
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, h.addr, l, o, nil, 0)
	ctx := context.Background()
	rs, err := f.Append(ctx, "orders", updates("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Seq != 1 || rs[1].Seq != 2 || rs[1].MsgID != "b" || rs[0].Duplicate {
		t.Fatalf("receipts %+v", rs)
	}
	info, err := h.store.Topic(ctx, "orders")
	if err != nil || info.LastSeq != 2 {
		t.Fatalf("the holder's queue: %+v %v", info, err)
	}
	its, err := h.store.Items(ctx, "orders", 1, 1)
	if err != nil || len(its) != 1 || its[0].Hash != rs[1].Hash || string(its[0].Value) != `{"m":"b"}` {
		t.Fatalf("the holder's item 2: %+v %v, receipt %+v", its, err, rs[1])
	}
	if l.calls.Load() != 0 || o.last() != forward.Forwarded {
		t.Fatalf("local appends %d, outcome %q", l.calls.Load(), o.last())
	}
	// A retry is a duplicate, as a local one would be.
	rs, err = f.Append(ctx, "orders", updates("b"))
	if err != nil || !rs[0].Duplicate || rs[0].Seq != 2 {
		t.Fatalf("retried: %+v %v", rs, err)
	}
}

// TestForwardedOverTLS: nodes that serve TLS are forwarded to over TLS
// (Config.TLS), their certificate not checked (loopback, and signed).
func TestForwardedOverTLS(t *testing.T) {
	h := newHolderTLS(t, key, true)
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f, err := forward.New(forward.Config{Node: "n2", Key: key, Local: l.append, Observe: o.observe, TLS: true,
		Route: func(string) (string, bool) { return h.addr, true }})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if rs, err := f.Append(context.Background(), "orders", updates("a")); err != nil || rs[0].Seq != 1 {
		t.Fatalf("%+v %v", rs, err)
	}
	if o.last() != forward.Forwarded || h.reqs.Load() != 1 || l.calls.Load() != 0 {
		t.Fatalf("outcome %q, forwards %d, local appends %d", o.last(), h.reqs.Load(), l.calls.Load())
	}
}

// TestAppendedHere: no route, a route off this machine, or an update
// without a msg id: appended here, no forward tried.
func TestAppendedHere(t *testing.T) {
	h := newHolder(t, key)
	for _, tc := range []struct {
		what  string
		route string
		ups   []baton.Update
	}{
		{"no route", "", updates("a")},
		{"another machine", "10.1.2.3:8080", updates("a")},
		{"a name, not localhost", "example.com:8080", updates("a")},
		{"no msg id", h.addr, []baton.Update{{ID: "k", Value: []byte("1")}}},
	} {
		l, o := &local{store: memstore.New(nil)}, &outcomes{}
		f := newForwarder(t, key, tc.route, l, o, nil, 0)
		// An update without a msg id breaks Append's contract: the
		// local store is the one to say so.
		if _, err := f.Append(context.Background(), "orders", tc.ups); (err != nil) != (tc.ups[0].MsgID == "") {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if l.calls.Load() != 1 || o.last() != forward.Local {
			t.Errorf("%s: local appends %d, outcome %q", tc.what, l.calls.Load(), o.last())
		}
	}
	if n := h.reqs.Load(); n != 0 {
		t.Errorf("the holder got %d forwards", n)
	}
}

// TestRefusedFallsBack: a holder that refuses (it signs with another key)
// changed nothing; the append is made here, and the next is forwarded
// again (a refusal is an answer: the node is there).
func TestRefusedFallsBack(t *testing.T) {
	h := newHolder(t, []byte(strings.Repeat("x", forward.KeySize)))
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, h.addr, l, o, nil, 0)
	for i, m := range []string{"a", "b"} {
		rs, err := f.Append(context.Background(), "orders", updates(m))
		if err != nil || rs[0].Seq != uint64(i+1) {
			t.Fatalf("append %s: %+v %v", m, rs, err)
		}
		if o.last() != forward.Fallback {
			t.Fatalf("outcome %q", o.last())
		}
	}
	if h.reqs.Load() != 2 || l.calls.Load() != 2 {
		t.Fatalf("forwards %d, local appends %d: want 2 and 2", h.reqs.Load(), l.calls.Load())
	}
	if _, err := h.store.Topic(context.Background(), "orders"); !errors.Is(err, baton.ErrNotFound) {
		t.Fatalf("the refusing holder has the topic: %v", err)
	}
}

// silent listens on loopback, accepts and never answers (a hung process):
// it returns the address and the count of connections accepted.
func silent(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c) // read nothing, answer nothing
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), &accepted
}

// TestCallerGaveUpRests: a caller whose own timeout is shorter than the
// forward's gets its context's error, and forwards to the silent holder
// rest: the caller's retry is appended here at once, not sent to wait
// again (else no append of such a caller would be made anywhere until
// the holder's lease lapsed).
func TestCallerGaveUpRests(t *testing.T) {
	addr, accepted := silent(t)
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, addr, l, o, nil, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Append(ctx, "orders", updates("a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want context.DeadlineExceeded", err)
	}
	if rs, err := f.Append(context.Background(), "orders", updates("a")); err != nil || rs[0].Seq != 1 {
		t.Fatalf("the retry: %+v %v", rs, err)
	}
	if o.last() != forward.Local || l.calls.Load() != 1 || accepted.Load() != 1 {
		t.Fatalf("the retry: outcome %q, local appends %d, connections %d", o.last(), l.calls.Load(), accepted.Load())
	}
}

// fakeClock is a clock the test moves (Config.Now).
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestNoAnswerRests: a holder that takes the request and never answers
// (a hung process) costs one forward its timeout; the append is made
// here, forwards to it rest for Rest, then are tried again.
func TestNoAnswerRests(t *testing.T) {
	addr, accepted := silent(t)
	clock := &fakeClock{now: time.Now()}
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, addr, l, o, clock.Now, 50*time.Millisecond)
	if _, err := f.Append(context.Background(), "orders", updates("a")); err != nil {
		t.Fatal(err)
	}
	if o.last() != forward.Fallback || l.calls.Load() != 1 || accepted.Load() != 1 {
		t.Fatalf("outcome %q, local appends %d, connections %d", o.last(), l.calls.Load(), accepted.Load())
	}
	if _, err := f.Append(context.Background(), "orders", updates("b")); err != nil {
		t.Fatal(err)
	}
	if o.last() != forward.Local || accepted.Load() != 1 {
		t.Fatalf("while resting: outcome %q, connections %d", o.last(), accepted.Load())
	}
	clock.Add(forward.DefaultRest)
	if _, err := f.Append(context.Background(), "orders", updates("c")); err != nil {
		t.Fatal(err)
	}
	if o.last() != forward.Fallback || accepted.Load() != 2 {
		t.Fatalf("after the rest: outcome %q, connections %d", o.last(), accepted.Load())
	}
}

// TestHolderNamedWhileForwarded: Holder names the address appends are
// forwarded to, and not while forwards to it rest (clients must leave a
// hung holder too), nor one that is not on this machine.
func TestHolderNamedWhileForwarded(t *testing.T) {
	addr, _ := silent(t)
	clock := &fakeClock{now: time.Now()}
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, addr, l, o, clock.Now, 50*time.Millisecond)
	if got, ok := f.Holder("orders"); !ok || got != addr {
		t.Fatalf("before any forward: Holder = %q, %v; want %q", got, ok, addr)
	}
	if _, err := f.Append(context.Background(), "orders", updates("a")); err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Holder("orders"); ok {
		t.Fatalf("after a forward that got no answer: Holder = %q, want none while forwards rest", got)
	}
	clock.Add(forward.DefaultRest)
	if got, ok := f.Holder("orders"); !ok || got != addr {
		t.Fatalf("after the rest: Holder = %q, %v; want %q", got, ok, addr)
	}
	far := newForwarder(t, key, "192.0.2.1:8080", l, o, clock.Now, 50*time.Millisecond)
	if got, ok := far.Holder("orders"); ok {
		t.Fatalf("a holder on another machine: Holder = %q, want none", got)
	}
	none := newForwarder(t, key, "", l, o, clock.Now, 50*time.Millisecond)
	if got, ok := none.Holder("orders"); ok {
		t.Fatalf("no holder known: Holder = %q", got)
	}
}

// TestGoneFallsBack: nobody listens at the holder's address.
func TestGoneFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, addr, l, o, nil, 0)
	if rs, err := f.Append(context.Background(), "orders", updates("a")); err != nil || rs[0].Seq != 1 {
		t.Fatalf("%+v %v", rs, err)
	}
	if o.last() != forward.Fallback || l.calls.Load() != 1 {
		t.Fatalf("outcome %q, local appends %d", o.last(), l.calls.Load())
	}
}

// TestCallerGaveUp: a caller's context that ends ends the append; nothing
// is appended here after it.
func TestCallerGaveUp(t *testing.T) {
	h := newHolder(t, key)
	l, o := &local{store: memstore.New(nil)}, &outcomes{}
	f := newForwarder(t, key, h.addr, l, o, nil, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Append(ctx, "orders", updates("a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
	if l.calls.Load() != 0 {
		t.Fatalf("appended here after the caller gave up")
	}
}
