package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/baton-pub/baton/internal/leasetest"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/publisher"
	"github.com/baton-pub/baton/sqlite"
)

// benchLeaves is the size of the proof benchmark's log: 10M unless
// BATON_BENCH_LEAVES says otherwise (or -short: 100k).
func benchLeaves() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("BATON_BENCH_LEAVES"), 10, 64); err == nil && v > 0 {
		return v
	}
	if testing.Short() {
		return 100_000
	}
	return 10_000_000
}

var (
	bigOnce   sync.Once
	bigTree   *ledger.Tree
	bigCopies ledger.Copies
	bigErr    error
	bigDir    string
)

// buildBig builds a node copy of benchLeaves real leaves once per process,
// through Tree.Append as the witness does, in batches of 10000.
func buildBig(b *testing.B) *ledger.Tree {
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "baton-ledger-bench-")
		if bigErr != nil {
			return
		}
		n := benchLeaves()
		start := time.Now()
		bigCopies, bigErr = sqlite.OpenCopies(filepath.Join(bigDir, "copies.db"), sqlite.CopiesOptions{})
		if bigErr != nil {
			return
		}
		bigTree, bigErr = ledger.OpenTree(bigCopies, "t")
		if bigErr != nil {
			return
		}
		at := time.Now()
		batch := make([]baton.Leaf, 0, 10000)
		for s := uint64(1); s <= n; s++ {
			var h baton.Hash
			h[0], h[1], h[2], h[3] = byte(s), byte(s>>8), byte(s>>16), byte(s>>24)
			batch = append(batch, baton.Leaf{Topic: "bench", Seq: s, ItemHash: h, Epoch: 1 + s/1_000_000, Publisher: "node-a", At: at})
			if len(batch) == cap(batch) || s == n {
				if bigErr = bigTree.Append(batch); bigErr != nil {
					return
				}
				batch = batch[:0]
			}
		}
		fmt.Fprintf(os.Stderr, "built a ledger copy of %d leaves in %v\n", n, time.Since(start).Round(time.Millisecond))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigTree
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigTree != nil {
		bigTree.Close()
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// BenchmarkProof measures what GET .../items/{seq}/proof does on the node's
// copy of a 10M-leaf log: read the entry and the O(log n) proof hashes, for
// a random seq, against the full size. It reports p50 and p99 per proof.
func BenchmarkProof(b *testing.B) {
	tr := buildBig(b)
	size := tr.Size()
	root, err := tr.Root(size)
	if err != nil {
		b.Fatal(err)
	}
	// One proof checked with the library's verifier.
	p, err := tr.InclusionProof(12345%size, size)
	if err != nil {
		b.Fatal(err)
	}
	_, enc, err := tr.Entry(12345%size + 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := proof.VerifyInclusion(ledger.Hasher, 12345%size, size, ledger.Hasher.HashLeaf(enc), p, root[:]); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, 0, b.N)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := rng.Uint64N(size)
		t0 := time.Now()
		if _, _, err := tr.Entry(idx + 1); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.InclusionProof(idx, size); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(size), "leaves")
}

// BenchmarkProofHTTP measures GET /v1/topics/{topic}/items/{seq}/proof end
// to end on the 10M-leaf copy: a witness serving it through the HTTP API,
// a keep-alive client on loopback, random seqs. It reports p50 and p99.
func BenchmarkProofHTTP(b *testing.B) {
	tr := buildBig(b)
	size := tr.Size()
	root, err := tr.Root(size)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st := memstore.New(nil)
	key, _ := ledger.GenerateKey("node-a")
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: st, Key: key, Copies: bigCopies, Dir: bigDir, Poll: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	w.Start(ctx)
	defer w.Close()
	if err := w.Follow("t"); err != nil { // bigCopies holds the copy
		b.Fatal(err)
	}
	cp, err := ledger.Sign(ledger.Body{Topic: "t", Size: size, Root: root, Epoch: 1, Node: "node-a"}, key)
	if err != nil {
		b.Fatal(err)
	}
	if err := ledger.SetLatestForTest(w, cp); err != nil {
		b.Fatal(err)
	}
	h := hub.New(st, hub.Options{})
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	api, err := bhttp.NewServer(bhttp.Config{Store: st, Hub: h, Ledger: w})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	client := &nethttp.Client{Transport: &nethttp.Transport{MaxIdleConnsPerHost: 1}}
	get := func(seq uint64) {
		resp, err := client.Get(fmt.Sprintf("%s/v1/topics/t/items/%d/proof", srv.URL, seq))
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(1)
	durs := make([]time.Duration, 0, b.N)
	rng := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := 1 + rng.Uint64N(size)
		t0 := time.Now()
		get(seq)
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(size), "leaves")
}

// BenchmarkCheckpointSign measures one checkpoint signature on a compact
// range of the 10M-leaf log: root from O(log n) hashes, then Ed25519.
func BenchmarkCheckpointSign(b *testing.B) {
	tr := buildBig(b)
	size := tr.Size()
	rng, err := tr.Range(size)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ledger.GenerateKey("node-a")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, _ := rng.GetRootHash(nil)
		var root baton.Hash
		copy(root[:], h)
		if _, err := ledger.Sign(ledger.Body{Topic: "bench", Size: size, Root: root, Epoch: 1, Node: "node-a"}, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish compares the publisher's throughput on SQLite with the
// ledger off (leaves are always written with the cursor; nothing else) and
// on (the checkpointer appending to the node's copy of the log and signing
// every 1000 items or 1s, the node's witness on the same store handle), as
// in baton serve. Each round publishes 20000 pre-appended
// items in each mode in turn (so that load on the machine hits both
// alike); the metrics are items/s per mode and on/off.
func BenchmarkPublish(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "b.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, _ := ledger.GenerateKey("node-a")
	register(b, st, key)
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: st, Key: key, Copies: copiesIn(b, filepath.Join(dir, "w")), Dir: filepath.Join(dir, "w")})
	if err != nil {
		b.Fatal(err)
	}
	w.Start(ctx)
	defer w.Close()
	const n = 20000
	var off, on, offCPU, onCPU time.Duration
	for i := 0; i < b.N; i++ {
		d, c := publishRound(b, st, nil, key, fmt.Sprintf("off-%d", i), n)
		off, offCPU = off+d, offCPU+c
		d, c = publishRound(b, st, w, key, fmt.Sprintf("on-%d", i), n)
		on, onCPU = on+d, onCPU+c
	}
	b.ReportMetric(float64(n*b.N)/off.Seconds(), "off-items/s")
	b.ReportMetric(float64(n*b.N)/on.Seconds(), "on-items/s")
	b.ReportMetric(off.Seconds()/on.Seconds(), "on/off")
	// CPU time of the process per item: what the ledger costs when the
	// machine has no idle core to hide it on.
	b.ReportMetric(float64(offCPU.Microseconds())/float64(n*b.N), "off-cpu-us/item")
	b.ReportMetric(float64(onCPU.Microseconds())/float64(n*b.N), "on-cpu-us/item")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishRound appends n items to a new topic and times the publisher
// draining them, with the ledger if w is set. It returns the wall time and
// the process's CPU time, up to the moment the ledger has caught up (the
// checkpointer signed and the witness mirrored everything), so that the
// CPU the ledger spends after the last commit is counted too.
func publishRound(b *testing.B, st *sqlite.Store, w *ledger.Witness, key *ledger.Key, topic string, n int) (time.Duration, time.Duration) {
	ctx := context.Background()
	ups := make([]baton.Update, 0, 1000)
	for j := 0; j < n; j++ {
		ups = append(ups, baton.Update{ID: "quote.600519", Value: json.RawMessage(fmt.Sprintf(`{"px":%d.25,"qty":%d}`, 1700+j%50, j)), MsgID: fmt.Sprintf("m%d", j)})
		if len(ups) == cap(ups) {
			if _, err := st.Append(ctx, topic, ups); err != nil {
				b.Fatal(err)
			}
			ups = ups[:0]
		}
	}
	lease, err := leasetest.Acquire(ctx, st, topic, key.Node, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	o := publisher.Options{Batch: 1000, OnCommit: func(c baton.Cursor, _ int) {
		if c.Seq == uint64(n) {
			close(done)
		}
	}}
	var cp *ledger.Checkpointer
	if w != nil {
		mode := os.Getenv("BATON_BENCH_MODE")
		if mode != "cp" {
			if err := w.Follow(topic); err != nil {
				b.Fatal(err)
			}
		}
		cc := ledger.CheckpointerConfig{Store: st, Lease: lease, Key: key}
		if mode != "cp" {
			cc.Tree, cc.OnAppend = w.Tree(topic), func() { w.Fed(topic) }
		}
		cp, err = ledger.NewCheckpointer(cc)
		if err != nil {
			b.Fatal(err)
		}
		cp.Start(rctx)
		defer cp.Close()
		o.Ledger = cp
	}
	t0, c0 := time.Now(), cpuTime()
	errc := make(chan error, 1)
	go func() { errc <- publisher.Run(rctx, st, lease, o) }()
	select {
	case <-done:
	case err := <-errc:
		b.Fatal(err)
	}
	d := time.Since(t0)
	if w != nil && os.Getenv("BATON_BENCH_MODE") == "" {
		for cp.Size() < uint64(n) || w.Status(topic).Size < uint64(n) {
			time.Sleep(time.Millisecond)
		}
	}
	c := cpuTime() - c0
	cancel()
	<-errc
	return d, c
}
