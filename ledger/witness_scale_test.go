package ledger_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/ledger"
)

// countingStore counts the reads of the store, by topic ("" for the
// node keys).
type countingStore struct {
	ledger.Store
	mu    sync.Mutex
	reads map[string]int
}

func newCountingStore(st ledger.Store) *countingStore {
	return &countingStore{Store: st, reads: make(map[string]int)}
}

func (s *countingStore) count(topic string) {
	s.mu.Lock()
	s.reads[topic]++
	s.mu.Unlock()
}

// take returns the reads so far and starts counting afresh.
func (s *countingStore) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reads
	s.reads = make(map[string]int)
	return r
}

func (s *countingStore) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	s.count(topic)
	return s.Store.Cursor(ctx, topic)
}

func (s *countingStore) Leaves(ctx context.Context, topic string, after uint64, limit int) ([]baton.Leaf, error) {
	s.count(topic)
	return s.Store.Leaves(ctx, topic, after, limit)
}

func (s *countingStore) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	s.count(topic)
	return s.Store.Published(ctx, topic, after, limit)
}

func (s *countingStore) Checkpoint(ctx context.Context, topic string) (baton.Checkpoint, error) {
	s.count(topic)
	return s.Store.Checkpoint(ctx, topic)
}

func (s *countingStore) Checkpoints(ctx context.Context, topic string, after uint64, limit int) ([]baton.Checkpoint, error) {
	s.count(topic)
	return s.Store.Checkpoints(ctx, topic, after, limit)
}

func (s *countingStore) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	s.count(topic)
	return s.Store.Lock(ctx, topic)
}

func (s *countingStore) Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error) {
	s.count(topic)
	return s.Store.Handovers(ctx, topic, limit)
}

func (s *countingStore) NodeKeys(ctx context.Context) ([]baton.NodeKey, error) {
	s.count("")
	return s.Store.NodeKeys(ctx)
}

// ledgerTopic is one topic published by node-p: its leaves so far.
type ledgerTopic struct {
	lease  baton.Lease
	leaves []baton.Leaf
}

// commitSigned commits every appended item of the topic with a checkpoint
// of the whole log in the same commit, as a busy publisher does.
func (lt *ledgerTopic) commitSigned(t *testing.T, st baton.Store, k *ledger.Key) baton.Checkpoint {
	t.Helper()
	c, cp := lt.next(t, st, k)
	c.Checkpoint = &cp
	if _, err := st.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return cp
}

// commitUnsigned commits every appended item of the topic without a
// checkpoint, and returns the checkpoint of the whole log for AddCheckpoint
// later, as a publisher whose commits came before its signer's Interval.
func (lt *ledgerTopic) commitUnsigned(t *testing.T, st baton.Store, k *ledger.Key) baton.Checkpoint {
	t.Helper()
	c, cp := lt.next(t, st, k)
	if _, err := st.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return cp
}

// next is the commit of every appended item of the topic after its leaves
// so far (taken in), and the checkpoint of the log with them.
func (lt *ledgerTopic) next(t *testing.T, st baton.Store, k *ledger.Key) (baton.Commit, baton.Checkpoint) {
	t.Helper()
	l := lt.lease
	prev := uint64(len(lt.leaves))
	its, err := st.Items(context.Background(), l.Topic, prev, 1000)
	if err != nil || len(its) == 0 {
		t.Fatalf("items after %d: %d, %v", prev, len(its), err)
	}
	c := baton.Commit{Topic: l.Topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: prev, Items: its, At: time.Now()}
	lt.leaves = append(lt.leaves, c.Leaves()...)
	rng := (&compact.RangeFactory{Hash: ledger.Hasher.HashChildren}).NewEmptyRange(0)
	for _, lf := range lt.leaves {
		if err := rng.Append(ledger.LeafHash(lf), nil); err != nil {
			t.Fatal(err)
		}
	}
	h, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	var root baton.Hash
	copy(root[:], h)
	return c, signAt(t, st, l, k, uint64(len(lt.leaves)), root)
}

// publishTopics publishes n items in each of topics with a checkpoint.
func publishTopics(t *testing.T, st baton.Store, k *ledger.Key, topics []string, n int) map[string]*ledgerTopic {
	t.Helper()
	out := make(map[string]*ledgerTopic, len(topics))
	for _, topic := range topics {
		appendN(t, st, topic, n)
		lt := &ledgerTopic{lease: acquire(t, st, topic, k.Node)}
		lt.commitSigned(t, st, k)
		out[topic] = lt
	}
	return out
}

// manyTopics is a memstore with topics published by node-p (3 leaves and
// a checkpoint each), node-p's key and a witness's, node-w's.
type manyTopics struct {
	m          *memstore.Store
	st         baton.Store
	pkey, wkey *ledger.Key
	topics     []string
	pub        map[string]*ledgerTopic
}

func newManyTopics(t *testing.T, prefix string, n int) *manyTopics {
	t.Helper()
	mt := &manyTopics{m: memstore.New(nil), topics: topicNames(prefix, n)}
	mt.st = mt.m.Handle()
	mt.pkey, _ = ledger.GenerateKey("node-p")
	mt.wkey, _ = ledger.GenerateKey("node-w")
	register(t, mt.st, mt.pkey)
	register(t, mt.st, mt.wkey)
	mt.pub = publishTopics(t, mt.st, mt.pkey, mt.topics, 3)
	return mt
}

func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}

func topicNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// settled says whether every topic's copy holds size leaves covered by an
// accepted checkpoint that this witness cosigned, without an alarm.
func settled(w *ledger.Witness, topics []string, size uint64) error {
	for _, topic := range topics {
		s := w.Status(topic)
		if s == nil || s.Size != size || s.CheckpointSize != size || s.CosignedSize != size || s.Alarms != 0 {
			return fmt.Errorf("%s: %+v", topic, s)
		}
	}
	return nil
}

// TestWitnessAtManyTopics is a measured run, not a check: one witness
// (default config) follows BATON_WITNESS_TOPICS idle topics (each with 3
// leaves and a checkpoint) on a memstore; once it caught up and
// BATON_WITNESS_SETTLE (default 70s) passed, it reports the process's
// descriptors, goroutines and heap, and the store reads and CPU over 10 s
// of idleness (docs/benchmarks.md, "Witness at many topics"). It uses
// only what the ledger package has long had, so that the same file
// measures older versions.
func TestWitnessAtManyTopics(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BATON_WITNESS_TOPICS"))
	if n <= 0 {
		t.Skip("set BATON_WITNESS_TOPICS to measure")
	}
	settle := 70 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BATON_WITNESS_SETTLE")); err == nil {
		settle = d
	}
	mt := newManyTopics(t, "many", n)
	m, wkey, topics := mt.m, mt.wkey, mt.topics
	heap := func() float64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapInuse) / (1 << 20)
	}
	fds0, gr0, heap0 := openFDs(t), runtime.NumGoroutine(), heap()

	cs := newCountingStore(m.Handle())
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: cs, Key: wkey, Copies: copiesIn(t, filepath.Join(t.TempDir(), "w")), Dir: filepath.Join(t.TempDir(), "w")})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	defer w.Close()
	start := time.Now()
	for _, topic := range topics {
		if err := w.Follow(topic); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 10*time.Minute, "the catch-up", func() error { return settled(w, topics, 3) })
	caughtUp := time.Since(start)
	time.Sleep(settle) // a measured run: the idle state is what is measured
	cs.take()
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(10 * time.Second)
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	total := 0
	for _, r := range cs.take() {
		total += r
	}
	t.Logf("%d topics: caught up in %s; idle: %.0f store reads/s, CPU %.1f%% of a core; descriptors %d (+%d), goroutines %d (+%d), heap %.1f MB (+%.1f)",
		n, caughtUp.Round(time.Millisecond), float64(total)/wall.Seconds(), 100*cpu.Seconds()/wall.Seconds(),
		openFDs(t), openFDs(t)-fds0, runtime.NumGoroutine(), runtime.NumGoroutine()-gr0, heap(), heap()-heap0)
}
