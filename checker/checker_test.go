package checker_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/wire"
)

// run builds a clean history of n items on topic "t", published by p1 at
// epoch 1, delivered to terminals a and b; mutate may break it.
func run(n int, mutate func(acks []checker.Ack, ds map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery)) checker.Report {
	return runWith(n, false, mutate)
}

// runWith is run whose every third update is a tombstone if tombstones.
func runWith(n int, tombstones bool, mutate func(acks []checker.Ack, ds map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery)) checker.Report {
	return runKeep(n, tombstones, 0, mutate)
}

// runKeep is runWith with servers that keep the last keep items
// (History.KeepItems; 0: all).
func runKeep(n int, tombstones bool, keep uint64, mutate func(acks []checker.Ack, ds map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery)) checker.Report {
	var acks []checker.Ack
	ds := map[string][]checker.Delivery{}
	h := checker.NewHistory()
	h.KeepItems(keep)
	for i := 1; i <= n; i++ {
		u := baton.Update{ID: "x", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i), Deleted: tombstones && i%3 == 0}
		hash := baton.HashItem("t", u)
		h.Sent("t", u.MsgID)
		acks = append(acks, checker.Ack{Source: "s", Topic: "t", MsgID: u.MsgID, Seq: uint64(i), Hash: hash})
		for _, term := range []string{"a", "b"} {
			ds[term] = append(ds[term], checker.Delivery{Terminal: term, Topic: "t", Item: wire.Item{Seq: uint64(i), ID: u.ID, Value: u.Value,
				MsgID: u.MsgID, Hash: hash, Epoch: 1, Publisher: "p1", Deleted: u.Deleted}})
		}
	}
	if mutate != nil {
		acks, ds = mutate(acks, ds)
	}
	for _, a := range acks {
		h.Acked(a)
	}
	for _, term := range []string{"a", "b"} {
		for _, d := range ds[term] {
			h.Delivered(d)
		}
	}
	return h.Check(map[string][]string{"a": {"t"}, "b": {"t"}})
}

func TestCleanHistory(t *testing.T) {
	if r := run(50, nil); !r.OK() || r.Acked != 50 || r.Delivered["a"] != 50 {
		t.Fatalf("clean history judged %+v", r)
	}
}

// TestTombstonesDelivered: tombstones are items like any other; their mark
// is in their hash.
func TestTombstonesDelivered(t *testing.T) {
	if r := runWith(30, true, nil); !r.OK() || r.Delivered["a"] != 30 {
		t.Fatalf("history with tombstones judged %+v", r)
	}
}

func TestFindsEachAnomaly(t *testing.T) {
	type m = func([]checker.Ack, map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery)
	for _, tc := range []struct {
		name  string
		mut   m
		check func(checker.Report) bool
	}{
		{"lost at the end", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			d["b"] = d["b"][:len(d["b"])-1]
			return a, d
		}, func(r checker.Report) bool {
			return r.Lost == 1 && r.Anomalies[0].Terminal == "b" && r.Anomalies[0].Seq == 10
		}},
		{"gap in the middle", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			d["a"] = append(d["a"][:4], d["a"][5:]...)
			return a, d
		}, func(r checker.Report) bool { return r.Lost >= 1 && r.Anomalies[0].Seq == 5 }},
		{"delivered twice", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			d["a"] = append(d["a"], d["a"][3])
			return a, d
		}, func(r checker.Report) bool { return r.Duplicated >= 1 }},
		{"reordered", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			d["a"][2], d["a"][3] = d["a"][3], d["a"][2]
			return a, d
		}, func(r checker.Report) bool { return r.Reordered >= 1 }},
		{"tampered value", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			d["a"][6].Value = json.RawMessage("666")
			return a, d
		}, func(r checker.Report) bool { return r.Mismatched >= 1 && r.Anomalies[0].Seq == 7 }},
		{"two publishers in one epoch", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			d["b"][8].Publisher = "p2"
			return a, d
		}, func(r checker.Report) bool { return r.SplitBrain >= 1 }},
		{"epoch goes back", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			for i := range d["a"][:5] {
				d["a"][i].Epoch = 2
			}
			return a, d
		}, func(r checker.Report) bool { return r.SplitBrain >= 1 }},
		{"one message at two seqs", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			for _, term := range []string{"a", "b"} {
				x := d[term][9]
				x.Seq = 11
				d[term] = append(d[term], x)
			}
			return a, d
		}, func(r checker.Report) bool { return r.Duplicated >= 1 }},
		{"never sent", func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			u := baton.Update{ID: "x", Value: json.RawMessage("1"), MsgID: "ghost"}
			d["a"] = append(d["a"], checker.Delivery{Terminal: "a", Topic: "t", Item: wire.Item{Seq: 11, ID: "x", Value: u.Value, MsgID: "ghost",
				Hash: baton.HashItem("t", u), Epoch: 1, Publisher: "p1"}})
			return a, d
		}, func(r checker.Report) bool { return r.Phantom == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(10, tc.mut)
			if r.OK() || !tc.check(r) {
				t.Fatalf("report %+v", r)
			}
		})
	}
}

// TestReappendedPastRetention: with servers that keep only the last 10
// items, a message published again 30 seqs after its first copy is a
// retry that came after the first was trimmed (its msg id with it):
// counted, not an anomaly. Within the kept items, or with no retention,
// it is a duplicate.
func TestReappendedPastRetention(t *testing.T) {
	again := func(at int) func([]checker.Ack, map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
		return func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
			for _, term := range []string{"a", "b"} {
				x := d[term][0]
				x.Seq = uint64(at)
				d[term] = append(d[term], x)
			}
			return a, d
		}
	}
	if r := runKeep(30, false, 10, again(31)); !r.OK() || r.Reappended != 1 {
		t.Fatalf("past the retention: %+v", r)
	}
	for _, keep := range []uint64{0, 40} {
		if r := runKeep(30, false, keep, again(31)); r.OK() || r.Duplicated == 0 || r.Reappended != 0 {
			t.Fatalf("keep %d: %+v", keep, r)
		}
	}
}

// TestAckedTwice: a retry after a lost acknowledgement is acknowledged
// again at the same seq (fine, counted once); at another seq it is a
// duplicate.
func TestAckedTwice(t *testing.T) {
	r := run(10, func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
		return append(a, a[3], a[7]), d
	})
	if !r.OK() || r.Acked != 10 {
		t.Fatalf("resent acknowledgements at the same seqs judged %+v", r)
	}
	r = run(10, func(a []checker.Ack, d map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery) {
		x := a[3]
		x.Seq = 9
		return append(a, x), d
	})
	if r.Duplicated != 1 || r.Anomalies[0].Seq != 9 {
		t.Fatalf("a message acknowledged at seqs 4 and 9 judged %+v", r)
	}
}

// handoverRun is a clean history of 30 items: epoch 1 (p1) publishes 1-10
// and expires, epoch 2 (p2) publishes 11-20 and is released, epoch 3 (p1)
// publishes 21-30 and still holds the lease.
func handoverRun(mutRecs func([]baton.ReleaseRecord) []baton.ReleaseRecord, mutDs func([]checker.Delivery) []checker.Delivery) checker.Report {
	h := checker.NewHistory()
	t0 := time.Unix(1_700_000_000, 0)
	var ds []checker.Delivery
	for i := 1; i <= 30; i++ {
		u := baton.Update{ID: "x", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)}
		hash := baton.HashItem("t", u)
		h.Sent("t", u.MsgID)
		h.Acked(checker.Ack{Source: "s", Topic: "t", MsgID: u.MsgID, Seq: uint64(i), Hash: hash})
		epoch, pub := uint64(1+(i-1)/10), "p1"
		if epoch == 2 {
			pub = "p2"
		}
		ds = append(ds, checker.Delivery{Terminal: "a", Topic: "t", Item: wire.Item{Seq: uint64(i), ID: u.ID, Value: u.Value,
			MsgID: u.MsgID, Hash: hash, Epoch: epoch, Publisher: pub}})
	}
	recs := []baton.ReleaseRecord{ // newest first, as the API lists them
		{Topic: "t", Holder: "p2", Epoch: 2, Reason: baton.ReasonReleased, At: t0.Add(2 * time.Second), LastSeq: 20,
			Successor: "p1", SuccessorEpoch: 3, SuccessorAt: t0.Add(2*time.Second + time.Millisecond)},
		{Topic: "t", Holder: "p1", Epoch: 1, Reason: baton.ReasonExpired, At: t0, LastSeq: 10,
			Successor: "p2", SuccessorEpoch: 2, SuccessorAt: t0.Add(time.Millisecond)},
	}
	if mutRecs != nil {
		recs = mutRecs(recs)
	}
	if mutDs != nil {
		ds = mutDs(ds)
	}
	for _, d := range ds {
		h.Delivered(d)
	}
	h.HandoversSeen("t", recs, true)
	return h.Check(map[string][]string{"a": {"t"}})
}

func TestHandovers(t *testing.T) {
	if r := handoverRun(nil, nil); !r.OK() {
		t.Fatalf("clean hand-overs judged %+v", r)
	}
	type recs = []baton.ReleaseRecord
	type dels = []checker.Delivery
	for _, tc := range []struct {
		name string
		r    func(recs) recs
		d    func(dels) dels
	}{
		{"successor skips an epoch", func(r recs) recs { r[1].SuccessorEpoch = 3; return r }, nil},
		{"listed out of order", func(r recs) recs { r[0], r[1] = r[1], r[0]; return r }, nil},
		{"two records of one epoch", func(r recs) recs { return append(r, r[1]) }, nil},
		{"successor before the release", func(r recs) recs { r[0].SuccessorAt = r[0].At.Add(-time.Millisecond); return r }, nil},
		{"wrong successor named", func(r recs) recs { r[1].Successor = "p3"; return r }, nil},
		{"missing record", func(r recs) recs {
			r[0].Epoch, r[0].SuccessorEpoch = 3, 4
			return r
		}, nil},
		{"zombie publishes after its epoch ended", nil, func(d dels) dels {
			d[10].Epoch, d[10].Publisher = 1, "p1" // seq 11 under epoch 1, which ended at 10
			return d
		}},
		{"successor republishes its predecessor's items", nil, func(d dels) dels {
			d[9].Epoch, d[9].Publisher = 2, "p2" // seq 10 under epoch 2, which began after 10
			return d
		}},
		{"item from a node that did not hold the lease", nil, func(d dels) dels {
			d[14].Publisher = "p3"
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := handoverRun(tc.r, tc.d)
			if r.Handover == 0 {
				t.Fatalf("report %+v", r)
			}
		})
	}
}

// TestFirstItemAfterStart: a terminal that subscribed after seq 0 and
// whose first item is seq 3 lost seqs 1 and 2, acknowledged or not.
func TestFirstItemAfterStart(t *testing.T) {
	h := checker.NewHistory()
	h.TerminalStarted("a", "t", 0)
	for i := 3; i <= 5; i++ {
		u := baton.Update{ID: "x", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)}
		h.Sent("t", u.MsgID)
		h.Delivered(checker.Delivery{Terminal: "a", Topic: "t", Item: wire.Item{Seq: uint64(i), ID: u.ID, Value: u.Value, MsgID: u.MsgID,
			Hash: baton.HashItem("t", u), Epoch: 1, Publisher: "p1"}})
	}
	r := h.Check(map[string][]string{"a": {"t"}})
	if r.Lost != 1 || r.Anomalies[0].Seq != 1 {
		t.Fatalf("report %+v", r)
	}
	// After a reset to earliest 3, starting at 3 is right.
	h.ResetSeen(checker.Reset{Terminal: "a", Topic: "t", Earliest: 3})
	if r := h.Check(map[string][]string{"a": {"t"}}); !r.OK() {
		t.Fatalf("after a reset: %+v", r)
	}
}

// TestPublishedAndLedger: no terminal may hold an item beyond the final
// cursor, and the ledger holds one leaf per published item.
func TestPublishedAndLedger(t *testing.T) {
	check := func(cursor, leaves uint64) checker.Report {
		h := checker.NewHistory()
		for i := 1; i <= 5; i++ {
			u := baton.Update{ID: "x", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)}
			h.Sent("t", u.MsgID)
			h.Delivered(checker.Delivery{Terminal: "a", Topic: "t", Item: wire.Item{Seq: uint64(i), ID: u.ID, Value: u.Value, MsgID: u.MsgID,
				Hash: baton.HashItem("t", u), Epoch: 1, Publisher: "p1"}})
		}
		h.PublishedSeen("t", cursor)
		h.LedgerSeen("t", leaves)
		return h.Check(map[string][]string{"a": {"t"}})
	}
	if r := check(6, 6); !r.OK() {
		t.Fatalf("clean: %+v", r)
	}
	if r := check(4, 4); r.Unpublished != 1 || r.Anomalies[0].Seq != 5 || r.Anomalies[0].Terminal != "a" {
		t.Fatalf("delivered beyond the cursor: %+v", r)
	}
	if r := check(6, 5); r.Ledger != 1 {
		t.Fatalf("a leaf missing: %+v", r)
	}
}
