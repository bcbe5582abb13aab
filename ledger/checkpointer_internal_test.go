package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/baton-pub/baton/internal/leasetest"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
)

// racingLog is the node's shared copy as the checkpointer sees it while
// the witness mirrors into it too: at every second read of its end, the
// witness has just appended all the store holds.
type racingLog struct {
	treeLog
	st    baton.Store
	topic string
	reads *int
}

func (r racingLog) End() uint64 {
	if *r.reads++; *r.reads%2 == 0 {
		ls, err := r.st.Leaves(context.Background(), r.topic, r.t.Size(), 1000)
		if err != nil {
			panic(err)
		}
		if err := r.t.AppendFrom(ls); err != nil {
			panic(err)
		}
	}
	return r.t.Size()
}

// TestCatchUpWhileTheWitnessAppends: the checkpointer's catch-up on a
// copy the witness appends to at the same time ends with the copy at the
// cursor, whichever of the two appended each leaf. (Reading the copy's end
// twice per step once made it ask the store for leaves past the cursor and
// stop, leaving the lease without checkpoints.)
func TestCatchUpWhileTheWitnessAppends(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(nil).Handle()
	const topic, n = "race", 40
	var ups []baton.Update
	for i := range n {
		ups = append(ups, baton.Update{ID: "k", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)})
	}
	if _, err := st.Append(ctx, topic, ups); err != nil {
		t.Fatal(err)
	}
	l, err := leasetest.Acquire(ctx, st, topic, "node-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	its, err := st.Items(ctx, topic, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	c := baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, Items: its, At: time.Now()}
	if _, err := st.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	tree, err := OpenTree(NewMemCopies(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	key, err := GenerateKey("node-a")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := NewCheckpointer(CheckpointerConfig{Store: st, Lease: l, Key: key, Tree: tree})
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	cp.log2 = racingLog{treeLog{t: tree}, st, topic, &reads}
	if err := cp.catchUp(ctx, n); err != nil {
		t.Fatalf("catch up to %d: %v", n, err)
	}
	if got := tree.Size(); got != n || cp.Size() != n {
		t.Fatalf("after catching up to %d: the copy holds %d leaves, the checkpointer says %d", n, got, cp.Size())
	}
	stored, err := st.Leaves(ctx, topic, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	own := &memLog{rangeFactory.NewEmptyRange(0)}
	if err := own.Append(stored); err != nil {
		t.Fatal(err)
	}
	want, err := own.Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, root, err := tree.Latest(); err != nil || root != want {
		t.Fatalf("root after the race: %s %v, want %s", root, err, want)
	}
}
