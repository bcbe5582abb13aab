package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// Tests of what is particular to the Redis engine: round trips, push
// notifications, reconnection, WAIT, scripts, Sentinel. The behaviour every
// engine shares is in the conformance suite (redis_test.go).

var msgN atomic.Uint64

func updates(t *testing.T, n int) []baton.Update {
	t.Helper()
	out := make([]baton.Update, n)
	for i := range out {
		k := msgN.Add(1)
		u, err := baton.Normalize(baton.Update{ID: fmt.Sprintf("d.%d", k%5), Value: []byte(fmt.Sprintf(`{"n":%d}`, k)), MsgID: fmt.Sprintf("m-%d", k)})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = u
	}
	return out
}

// commitAll publishes items, the queue's first ones, under lease l.
func commitAll(t *testing.T, s *redis.Store, l baton.Lease, items []baton.Item) {
	t.Helper()
	c := baton.Commit{Topic: l.Topic, Epoch: l.Epoch, Holder: l.Holder, At: time.Now()}
	c.Items = items
	if _, err := s.Commit(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

// roundTrips counts the commands and pipelines a client sends.
type roundTrips struct{ n atomic.Int64 }

func (*roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		switch cmd.Name() {
		case "hello", "auth", "select", "client": // a new connection's handshake
		default:
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

// count returns how many round trips fn made.
func (r *roundTrips) count(fn func()) int64 {
	before := r.n.Load()
	fn()
	return r.n.Load() - before
}

func TestRoundTrips(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	rt := &roundTrips{}
	s.Client().AddHook(rt)
	ctx := t.Context()
	const topic = "rt"
	if _, err := s.Append(ctx, topic, updates(t, 1)); err != nil { // registers the topic
		t.Fatal(err)
	}
	var rs []baton.Receipt
	if n := rt.count(func() {
		var err error
		if rs, err = s.Append(ctx, topic, updates(t, 100)); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Append of 100 updates made %d round trips, want 1", n)
	}
	var items []baton.Item
	if n := rt.count(func() {
		var err error
		if items, err = s.Items(ctx, topic, 1, 100); err != nil || len(items) != 100 {
			t.Fatalf("Items: %d, %v", len(items), err)
		}
	}); n != 1 {
		t.Errorf("Items made %d round trips, want 1", n)
	}
	l := acquire(t, s, topic, "n1", time.Minute)
	c := baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: 0, At: time.Now()}
	all, err := s.Items(ctx, topic, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	c.Items = all
	if n := rt.count(func() {
		if _, err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Commit of 101 items made %d round trips, want 1", n)
	}
	if n := rt.count(func() {
		ps, err := s.Published(ctx, topic, 0, 1000)
		if err != nil || len(ps) != 101 || ps[100].Hash != rs[99].Hash {
			t.Fatalf("Published: %d, %v", len(ps), err)
		}
	}); n != 1 {
		t.Errorf("Published made %d round trips, want 1", n)
	}
	for name, fn := range map[string]func() error{
		"Lock":      func() error { _, err := s.Lock(ctx, topic); return err },
		"Cursor":    func() error { _, err := s.Cursor(ctx, topic); return err },
		"RenewNode": func() error { _, err := s.RenewNode(ctx, nodeOf(l), time.Minute); return err },
		"Topic":     func() error { _, err := s.Topic(ctx, topic); return err },
	} {
		if n := rt.count(func() {
			if err := fn(); err != nil {
				t.Fatal(err)
			}
		}); n != 1 {
			t.Errorf("%s made %d round trips, want 1", name, n)
		}
	}
}

// TestBigBatches checks batches larger than Lua's unpack limit, and a trim
// that takes several chunks.
func TestBigBatches(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	const topic, n = "big", 5000
	ups := updates(t, n)
	rs, err := s.Append(ctx, topic, ups)
	if err != nil {
		t.Fatal(err)
	}
	if rs[n-1].Seq != n {
		t.Fatalf("last seq %d, want %d", rs[n-1].Seq, n)
	}
	again, err := s.Append(ctx, topic, ups)
	if err != nil || !again[n-1].Duplicate || again[n-1].Hash != rs[n-1].Hash {
		t.Fatalf("re-append: %v, last %+v", err, again[n-1])
	}
	items, err := s.Items(ctx, topic, 0, n)
	if err != nil || len(items) != n {
		t.Fatalf("Items: %d, %v", len(items), err)
	}
	l := acquire(t, s, topic, "n1", time.Minute)
	commitAll(t, s, l, items)
	deleted, err := s.Trim(ctx, topic, 4500)
	if err != nil || deleted != 4499 {
		t.Fatalf("Trim(4500) = %d, %v; want 4499", deleted, err)
	}
	ti, err := s.Topic(ctx, topic)
	if err != nil || ti.FirstSeq != 4500 || ti.LastSeq != n {
		t.Fatalf("Topic = %+v, %v; want first 4500 last %d", ti, err, n)
	}
	if _, err := s.Items(ctx, topic, 4498, 10); !errors.Is(err, baton.ErrTrimmed) {
		t.Fatalf("Items after 4498: %v, want ErrTrimmed", err)
	}
	if _, err := s.SeqOfHash(ctx, topic, items[0].Hash); !errors.Is(err, baton.ErrNotFound) {
		t.Fatalf("SeqOfHash of a trimmed item: %v, want ErrNotFound", err)
	}
	if seq, err := s.SeqOfHash(ctx, topic, items[4499].Hash); err != nil || seq != 4500 {
		t.Fatalf("SeqOfHash of a kept item: %d, %v", seq, err)
	}
	leaves, err := s.Leaves(ctx, topic, 0, 10)
	if err != nil || len(leaves) != 10 || leaves[0].Seq != 1 {
		t.Fatalf("leaves of trimmed items: %d, %v", len(leaves), err)
	}
}

// TestTrimDeletesWholeEntries checks what a trim leaves in Redis: the queue
// keeps an entry per append, so an entry goes once all its items are under
// the trim mark, and the index entries of every trimmed item go at once.
func TestTrimDeletesWholeEntries(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	c := srv.Client()
	ctx := t.Context()
	const topic = "spans"
	for range 3 {
		if _, err := s.Append(ctx, topic, updates(t, 10)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Items(ctx, topic, 0, 100)
	if err != nil || len(items) != 30 {
		t.Fatalf("Items: %d, %v", len(items), err)
	}
	if n := c.XLen(ctx, "baton:{spans}:queue").Val(); n != 3 {
		t.Fatalf("queue stream has %d entries after 3 appends, want 3", n)
	}
	l := acquire(t, s, topic, "n1", time.Minute)
	commitAll(t, s, l, items)
	if n, err := s.Trim(ctx, topic, 25); err != nil || n != 24 {
		t.Fatalf("Trim(before 25) = %d, %v; want 24", n, err)
	}
	// Entries 1-10 and 11-20 are gone; 21-30 stays for items 25 to 30.
	if n := c.XLen(ctx, "baton:{spans}:queue").Val(); n != 1 {
		t.Fatalf("queue stream has %d entries after the trim, want 1", n)
	}
	for _, k := range []string{"msgids", "hashes"} {
		if n := c.HLen(ctx, "baton:{spans}:"+k).Val(); n != 6 {
			t.Fatalf("%s index has %d entries after the trim, want 6", k, n)
		}
	}
	if _, err := s.Items(ctx, topic, 23, 10); !errors.Is(err, baton.ErrTrimmed) {
		t.Fatalf("Items after 23 (in the kept entry, under the mark): %v, want ErrTrimmed", err)
	}
	got, err := s.Items(ctx, topic, 24, 10)
	if err != nil || len(got) != 6 || got[0].Seq != 25 || got[0].Hash != items[24].Hash {
		t.Fatalf("Items after 24: %d, %v", len(got), err)
	}
	if ps, err := s.Published(ctx, topic, 24, 10); err != nil || len(ps) != 6 || ps[5].Seq != 30 {
		t.Fatalf("Published after 24: %d, %v", len(ps), err)
	}
}

// TestAcquireReadsResume: an acquire reads, in its one script, where the
// new holder resumes: the cursor checked against the hash index, and the
// items after it across the queue's entries (baton.Resume). A cursor the
// index does not vouch for is left for the holder to check.
func TestAcquireReadsResume(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	const topic = "resume"
	for range 3 {
		if _, err := s.Append(ctx, topic, updates(t, 10)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Items(ctx, topic, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	a := acquire(t, s, topic, "n1", time.Minute)
	if r := a.Resume; r == nil || !r.Checked || len(r.Items) != 30 || r.Items[0].Seq != 1 {
		t.Fatalf("Resume of a fresh topic = %+v, want checked and the 30 items", r)
	}
	commitAll(t, s, a, items[:15])
	if err := s.Release(ctx, a, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	b := acquire(t, s, topic, "n2", time.Minute)
	r := b.Resume
	if r == nil || !r.Checked || r.Asked == 0 || len(r.Items) != 15 {
		t.Fatalf("Resume after 15 published = %+v, want checked and items 16 to 30", r)
	}
	for i, it := range r.Items {
		if want := items[15+i]; it.Seq != want.Seq || it.Hash != want.Hash || string(it.Value) != string(want.Value) {
			t.Fatalf("Resume's item %d = %+v, want %+v", i, it, want)
		}
	}
	if err := s.Release(ctx, b, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	// The index loses the cursor's hash: the acquire does not vouch for it.
	hk := "baton:{resume}:hashes"
	if n, err := srv.Client().HDel(ctx, hk, string(items[14].Hash[:])).Result(); err != nil || n != 1 {
		t.Fatalf("HDEL of the cursor's hash: %d, %v", n, err)
	}
	c := acquire(t, s, topic, "n3", time.Minute)
	if c.Resume == nil || c.Resume.Checked {
		t.Fatalf("Resume with the cursor's hash gone from the index = %+v, want not checked", c.Resume)
	}
}

// TestSuccessorOfOddNames: the acquire fills the successor into the
// previous epoch's record (JSON); node names with quotes, slashes,
// non-ASCII text and a field's own name read back as they were.
func TestSuccessorOfOddNames(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	const topic = "odd"
	names := []string{`a"successor":"x`, `b\\"epoch":"1"/ü`, "c\n}"}
	var prev baton.Lease
	for i, node := range names {
		l := acquire(t, s, topic, node, time.Minute)
		if i > 0 {
			recs, err := s.Handovers(ctx, topic, 1)
			if err != nil || len(recs) != 1 {
				t.Fatalf("Handovers: %v, %v", recs, err)
			}
			r := recs[0]
			if r.Holder != prev.Holder || r.Epoch != prev.Epoch || r.Successor != node || r.SuccessorEpoch != l.Epoch {
				t.Fatalf("record after %q took over from %q: %+v", node, prev.Holder, r)
			}
		}
		if err := s.Release(ctx, l, baton.ReasonReleased); err != nil {
			t.Fatal(err)
		}
		prev = l
	}
}

// TestKeyspaceExpiryWakes checks the push path of a lapsed node lease: with
// keyspace notifications on (Open enables them), the standby's subscriptions
// wake when the node lease's ttl key expires, with no store call from
// anyone: SignalNode, and SignalLock on each topic held under it.
func TestKeyspaceExpiryWakes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	url := srv.URL(0)
	holder, standby := open(t, url, redis.Options{}), open(t, url, redis.Options{})
	ctx := t.Context()
	const topic = "ks"
	sub := standby.Subscribe(topic, baton.SignalLock)
	defer sub.Close()
	l := acquire(t, holder, topic, "n1", 300*time.Millisecond)
	waitWake(t, sub, "the acquire")
	nodes := standby.Subscribe("", baton.SignalNode)
	defer nodes.Close()
	select {
	case <-sub.C():
		t.Fatal("woken before the lease lapsed")
	case <-nodes.C():
		t.Fatal("woken on SignalNode before the node lease lapsed")
	case <-time.After(150 * time.Millisecond): // well inside the lease
	}
	waitWake(t, nodes, "the node lease's ttl key expiry (SignalNode)")
	waitWake(t, sub, "the node lease's ttl key expiry (SignalLock on its topic)")
	st, err := standby.Lock(ctx, topic)
	if err != nil || st.Held {
		t.Fatalf("Lock after the expiry wake-up = %+v, %v; want not held", st, err)
	}
	recs, err := standby.ExpireNode(ctx, "n1")
	if err != nil || len(recs) != 1 || recs[0].Epoch != l.Epoch || recs[0].Reason != baton.ReasonExpired || !recs[0].At.Equal(l.ExpiresAt) {
		t.Fatalf("ExpireNode = %+v, %v; want the expired record of epoch %d at %v", recs, err, l.Epoch, l.ExpiresAt)
	}
}

func waitWake(t *testing.T, sub baton.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.C():
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake-up after %s", what)
	}
}

// TestResubscribe kills the store's pub/sub connection: the store subscribes
// again, wakes every subscription (messages may have been lost), and keeps
// delivering changes made through another handle.
func TestResubscribe(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	url := srv.URL(0)
	a, b := open(t, url, redis.Options{}), open(t, url, redis.Options{})
	ctx := t.Context()
	const topic = "resub"
	sub := a.Subscribe(topic, baton.SignalAppend)
	defer sub.Close()
	if _, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "the pub/sub connection was killed")
	if _, err := b.Append(ctx, topic, updates(t, 1)); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "an append through the other handle, after the resubscription")
}

// TestServerRestart kills the server: operations fail fast with
// ErrUnavailable; after a restart they work again on the same data, and
// subscriptions are woken.
func TestServerRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	const topic = "restart"
	rs, err := s.Append(ctx, topic, updates(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Subscribe(topic, baton.SignalCommit)
	defer sub.Close()
	srv.Kill()
	start := time.Now()
	_, err = s.Append(ctx, topic, updates(t, 1))
	if !errors.Is(err, baton.ErrUnavailable) {
		t.Fatalf("Append with the server down: %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Append with the server down took %v", time.Since(start))
	}
	if err := s.Ping(ctx); !errors.Is(err, baton.ErrUnavailable) {
		t.Fatalf("Ping with the server down: %v, want ErrUnavailable", err)
	}
	srv.Restart()
	waitWake(t, sub, "the restart (resubscription)")
	poll.Until(t, 10*time.Second, "the store usable after the restart", func() error { return s.Ping(ctx) })
	items, err := s.Items(ctx, topic, 0, 10)
	if err != nil || len(items) != 3 || items[2].Hash != rs[2].Hash {
		t.Fatalf("Items after restart: %d, %v", len(items), err)
	}
}

// TestTLS opens the store over TLS, trusting the test CA, and checks that
// an untrusted certificate is one clear error.
func TestTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true, Password: "s3cret"})
	s := open(t, srv.TLSURL(0), redis.Options{})
	ctx := t.Context()
	rs, err := s.Append(ctx, "tls", updates(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.Items(ctx, "tls", 0, 10)
	if err != nil || len(items) != 3 || items[2].Hash != rs[2].Hash {
		t.Fatalf("Items over TLS: %d, %v", len(items), err)
	}
	sub := s.Subscribe("tls", baton.SignalAppend)
	defer sub.Close()
	other := open(t, srv.TLSURL(0), redis.Options{})
	if _, err := other.Append(ctx, "tls", updates(t, 1)); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "an append through another TLS handle")
	untrusted := strings.SplitN(srv.TLSURL(0), "?", 2)[0]
	openErr(t, untrusted, redis.Options{}, 3*time.Second, baton.ErrUnavailable, "certificate is not trusted")
}

// TestScriptCacheFlushed checks the EVALSHA -> EVAL fallback.
func TestScriptCacheFlushed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	if _, err := srv.Do(ctx, "SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "flushed", updates(t, 2)); err != nil {
		t.Fatalf("Append after SCRIPT FLUSH: %v", err)
	}
	acquire(t, s, "flushed", "n1", time.Minute)
}

// TestWaitReplicas checks WAIT: without a replica, writes that must be
// replicated fail with ErrUnavailable; with one in sync they succeed.
func TestWaitReplicas(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	s := open(t, master.URL(0)+"?wait_replicas=1&wait_timeout=100ms", redis.Options{})
	ctx := t.Context()
	_, err := s.AcquireNode(ctx, "n1", time.Minute)
	if !errors.Is(err, baton.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("AcquireNode without a replica: %v, want ErrUnavailable (0 of 1 replicas)", err)
	}
	if _, err := s.Append(ctx, "w1", updates(t, 1)); !errors.Is(err, baton.ErrUnavailable) {
		t.Fatalf("Append without a replica: %v, want ErrUnavailable", err)
	}
	// Reads and trims do not wait.
	if _, err := s.Items(ctx, "w1", 0, 10); err != nil {
		t.Fatal(err)
	}
	redistest.Start(t, redistest.Options{ReplicaOf: master.Addr})
	waitAcked(t, master)
	// A replica in sync acknowledges in well under a millisecond, but on a
	// loaded machine not always within the 100 ms that kept the checks
	// above fast: give these writes a timeout that only a missing replica
	// would reach.
	s = open(t, master.URL(0)+"?wait_replicas=1&wait_timeout=10s", redis.Options{})
	l := acquire(t, s, "w2", "n2", time.Minute)
	rs, err := s.Append(ctx, "w2", updates(t, 2))
	if err != nil {
		t.Fatalf("Append with a replica: %v", err)
	}
	items, err := s.Items(ctx, "w2", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	c := baton.Commit{Topic: "w2", Epoch: l.Epoch, Holder: l.Holder, At: time.Now()}
	c.Items = items
	if cur, err := s.Commit(ctx, c); err != nil || cur.Hash != rs[1].Hash {
		t.Fatalf("Commit with a replica: %+v, %v", cur, err)
	}
}

// waitAcked waits until master's replica acknowledges writes. It polls
// with the very condition: a write that WAIT sees acknowledged. (A replica
// counts for WAIT only once the master has its first ACK, up to a second
// after the replica reports its link up.)
func waitAcked(t *testing.T, master *redistest.Server) {
	t.Helper()
	mc := master.Client()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pipe := mc.Pipeline()
		pipe.Set(t.Context(), "probe", "1", 0)
		w := pipe.Do(t.Context(), "WAIT", 1, 50)
		_, _ = pipe.Exec(t.Context())
		if n, _ := w.Int(); n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never acknowledged: %v", w.Err())
		}
	}
}

// TestSentinelFailover runs one master, one replica and three sentinels,
// opens the store through the sentinels with WAIT for one replica, and
// fails the master over mid-stream. It checks what survives: every
// acknowledged item, the cursor, the lease epoch and the release records;
// and that the store follows the new master for writes and for signals.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes and fails over")
	}
	g := redistest.StartSentinel(t, redistest.SentinelOptions{})
	url := g.URL(0) + "?wait_replicas=1&wait_timeout=1s"
	a, b := open(t, url, redis.Options{}), open(t, url, redis.Options{})
	ctx := t.Context()
	const topic = "failover"

	l := acquire(t, a, topic, "n1", time.Minute)
	// n2's node lease, taken before the failover with WAIT, survives it.
	nl2, err := b.AcquireNode(ctx, "n2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var acked []baton.Receipt
	for range 10 {
		rs, err := a.Append(ctx, topic, updates(t, 10))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, rs...)
	}
	items, err := a.Items(ctx, topic, 0, 1000)
	if err != nil || len(items) != 100 {
		t.Fatalf("Items: %d, %v", len(items), err)
	}
	commit := func(s *redis.Store, l baton.Lease, prev uint64, its []baton.Item) (baton.Cursor, error) {
		c := baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: prev, At: time.Now()}
		c.Items = its
		return s.Commit(ctx, c)
	}
	cur, err := commit(a, l, 0, items[:60])
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, l, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}

	old := g.Master.Addr
	newMaster := g.Failover()
	t.Logf("failed over from %s to %s", old, newMaster)

	// The store follows the new master: retry until a write goes through.
	// The first attempts may hit the demoted master or a closed connection,
	// or be applied on the new master before it has a replica in sync to
	// acknowledge them (WAIT): then Acquire fails with ErrUnavailable but the
	// lease exists, and the holder adopts it once its node lease renews, as
	// the elector does.
	var l2 baton.Lease
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		l2, err = b.Acquire(ctx, topic, nl2)
		if errors.Is(err, baton.ErrLeaseHeld) {
			// A read of the lock is confirmed by the replicas too
			// (confirm.go): until the new master has one in sync, it is
			// unavailable, and the holder tries again.
			st, lerr := b.Lock(ctx, topic)
			switch {
			case lerr != nil:
				err = lerr
			case st.Held && st.Lease.Holder == "n2":
				l2 = st.Lease
				_, err = b.RenewNode(ctx, nl2, time.Minute)
			}
		}
		if err == nil {
			break
		}
		if errors.Is(err, baton.ErrLeaseHeld) || !errors.Is(err, baton.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Acquire after failover: %v", err)
		}
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	t.Logf("lease taken on the new master %v after the failover", time.Since(start).Round(time.Millisecond))
	addr := masterAddrOf(t, b)
	if addr != newMaster {
		t.Errorf("store writes to %s, want the new master %s", addr, newMaster)
	}
	if l2.Epoch != l.Epoch+1 {
		t.Errorf("epoch after failover %d, want %d: the lease write was acknowledged by the replica", l2.Epoch, l.Epoch+1)
	}
	recs, err := b.Handovers(ctx, topic, 10)
	if err != nil || len(recs) != 1 || recs[0].Epoch != l.Epoch || recs[0].LastSeq != cur.Seq || recs[0].Successor != "n2" {
		t.Fatalf("handovers after failover: %+v, %v", recs, err)
	}
	got, err := b.Items(ctx, topic, 0, 1000)
	if err != nil || len(got) != len(acked) {
		t.Fatalf("Items after failover: %d, %v; want all %d acknowledged", len(got), err, len(acked))
	}
	for i, it := range got {
		if it.Seq != acked[i].Seq || it.Hash != acked[i].Hash {
			t.Fatalf("item %d after failover = %d %s, acknowledged as %d %s", i, it.Seq, it.Hash, acked[i].Seq, acked[i].Hash)
		}
	}
	c2, err := b.Cursor(ctx, topic)
	if err != nil || c2.Seq != cur.Seq || c2.Hash != cur.Hash {
		t.Fatalf("cursor after failover %+v, %v; want %+v", c2, err, cur)
	}
	// The successor resumes from the cursor, and a's subscription hears it.
	sub := a.Subscribe(topic, baton.SignalCommit)
	defer sub.Close()
	if _, err := commit(b, l2, c2.Seq, got[60:]); err != nil {
		t.Fatalf("commit by the successor: %v", err)
	}
	waitWake(t, sub, "a commit on the new master")
	// The old lease is fenced on the new master.
	if _, err := commit(a, l, c2.Seq, got[60:]); !errors.Is(err, baton.ErrFenced) {
		t.Fatalf("commit under the old epoch: %v, want ErrFenced", err)
	}
}

// masterAddrOf asks the server the store writes to for its own address.
func masterAddrOf(t *testing.T, s *redis.Store) string {
	t.Helper()
	info, err := s.Client().Info(t.Context(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tcp_port:"); ok {
			return net.JoinHostPort("127.0.0.1", v)
		}
	}
	t.Fatal("no tcp_port in INFO")
	return ""
}

// TestOwnAppendSignalledOnce: a Store signals its own append once, when
// the script returns, not again when the append's message comes back from
// the server (a second wake-up costs its publisher a read of the queue);
// another handle's append is signalled through the message.
func TestOwnAppendSignalledOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := open(t, srv.URL(0), redis.Options{}), open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	sub := a.Subscribe("own", baton.SignalAppend)
	defer sub.Close()
	// marker: a's listener has heard every message published before b's
	// append to "marker" (pub/sub keeps one connection's order).
	marker := a.Subscribe("marker", baton.SignalAppend)
	defer marker.Close()
	up := func(id string) []baton.Update {
		u, err := baton.Normalize(baton.Update{ID: id, Value: json.RawMessage("1")})
		if err != nil {
			t.Fatal(err)
		}
		return []baton.Update{u}
	}
	wait := func(s baton.Subscription, what string) {
		t.Helper()
		select {
		case <-s.C():
		case <-time.After(10 * time.Second):
			t.Fatalf("no signal for %s", what)
		}
	}
	for round := range 3 {
		if _, err := a.Append(ctx, "own", up("k")); err != nil {
			t.Fatal(err)
		}
		wait(sub, "a's own append")
		if _, err := b.Append(ctx, "marker", up("m")); err != nil {
			t.Fatal(err)
		}
		wait(marker, "b's append to the marker topic")
		select {
		case <-sub.C():
			t.Fatalf("round %d: a's own append was signalled again when its message came back", round)
		default:
		}
	}
	// Another handle's append reaches a through the message.
	if _, err := b.Append(ctx, "own", up("k")); err != nil {
		t.Fatal(err)
	}
	wait(sub, "b's append")
}

// TestAppendLostReplySignalled: an append whose caller stopped waiting may
// still have run; its message comes back as this Store's own, which the
// listener does not signal, so Append signals it: a publisher here is
// woken for an item whose Append returned an error, or it would wait for
// the next append.
func TestAppendLostReplySignalled(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	const topic = "lost"
	sub := s.Subscribe(topic, baton.SignalAppend)
	defer sub.Close()
	hit := 0
	for i := 0; i < 500 && hit < 3; i++ {
		for len(sub.C()) > 0 {
			<-sub.C()
		}
		u, err := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage("1"), MsgID: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%20)*10*time.Microsecond)
		_, err = s.Append(ctx, topic, []baton.Update{u})
		cancel()
		if err == nil {
			continue
		}
		// Did it run? A retry of the msg id says.
		rs, err := s.Append(t.Context(), topic, []baton.Update{u})
		if err != nil {
			t.Fatal(err)
		}
		if !rs[0].Duplicate {
			continue // it had not run; the retry appended and signalled
		}
		hit++
		select {
		case <-sub.C():
		default:
			t.Fatalf("append %d ran though its caller stopped waiting, and nothing signalled it", i)
		}
	}
	if hit == 0 {
		t.Fatal("no append ran after its caller stopped waiting in 500 tries: the test proves nothing")
	}
}
