package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
)

// busyStore publishes a few updates, some of them tombstones, before every
// snapshot page is read, as a publisher committing during a snapshot would.
type busyStore struct {
	baton.Store
	p     *publisher
	rng   *rand.Rand
	pages int
}

func (b *busyStore) Snapshot(ctx context.Context, topic, afterID string, limit int) (uint64, []baton.Published, string, error) {
	b.pages++
	b.p.updates(b.rng, 1+b.rng.IntN(20))
	return b.Store.Snapshot(ctx, topic, afterID, limit)
}

// updates publishes n updates of ids k0..k59, a tenth of them tombstones.
func (p *publisher) updates(rng *rand.Rand, n int) {
	p.tb.Helper()
	ups := make([]baton.Update, n)
	for i := range ups {
		p.n++
		u := baton.Update{ID: fmt.Sprintf("k%02d", rng.IntN(60)), Value: json.RawMessage(fmt.Sprint(p.n)), MsgID: fmt.Sprintf("m%d", p.n)}
		if rng.IntN(10) == 0 {
			u.Value, u.Deleted = json.RawMessage("null"), true
		}
		ups[i] = u
	}
	if _, err := p.st.Append(context.Background(), p.topic, ups); err != nil {
		p.tb.Fatalf("append: %v", err)
	}
	p.commitAll()
}

// stateAt folds the published items up to seq into each id's latest seq.
func stateAt(t *testing.T, st baton.Store, topic string, seq uint64) map[string]uint64 {
	ps, err := st.Published(context.Background(), topic, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]uint64)
	for _, p := range ps {
		switch {
		case p.Seq > seq:
		case p.Deleted:
			delete(want, p.ID)
		default:
			want[p.ID] = p.Seq
		}
	}
	return want
}

// TestReadSnapshotStitchesPages reads a snapshot in small pages while
// commits go on between them: what it emits, applied in order, is the
// state as of the seq it returns, which the live stream follows.
func TestReadSnapshotStitchesPages(t *testing.T) {
	for seed := range uint64(20) {
		mem := memstore.New(nil)
		p := newPublisher(t, mem, testTopic)
		rng := rand.New(rand.NewPCG(seed, 1))
		p.updates(rng, 200)
		st := &busyStore{Store: mem, p: p, rng: rng}
		got := make(map[string]uint64)
		seq, err := ReadSnapshot(context.Background(), st, testTopic, 7, func(ps []baton.Published) error {
			if len(ps) > 7 {
				t.Fatalf("emit got %d items, page 7", len(ps))
			}
			for _, p := range ps {
				if p.Deleted {
					delete(got, p.ID)
				} else {
					got[p.ID] = p.Seq
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.pages < 3 {
			t.Fatalf("seed %d: %d pages: the test does not page", seed, st.pages)
		}
		want := stateAt(t, mem, testTopic, seq)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: snapshot at seq %d:\n got %v\nwant %v", seed, seq, got, want)
		}
		cur, _ := mem.Cursor(context.Background(), testTopic)
		if seq > cur.Seq {
			t.Fatalf("seed %d: snapshot seq %d beyond the cursor %d", seed, seq, cur.Seq)
		}
	}
}

// TestReadSnapshotTopicDeleted: a snapshot whose topic is deleted between
// pages ends with an error, not a mix of two topics.
func TestReadSnapshotTopicDeleted(t *testing.T) {
	mem := memstore.New(nil)
	p := newPublisher(t, mem, testTopic)
	p.publish(30)
	pages := 0
	_, err := ReadSnapshot(context.Background(), mem, testTopic, 10, func([]baton.Published) error {
		if pages++; pages == 1 {
			if _, err := mem.DeleteTopic(context.Background(), testTopic, baton.DeleteOptions{Ledger: true}); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err == nil {
		t.Fatal("snapshot across a delete: no error")
	}
}
