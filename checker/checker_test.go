package checker_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
)

// run builds a clean history of n items on topic "t", published by p1 at
// epoch 1, delivered to terminals a and b; mutate may break it.
func run(n int, mutate func(acks []checker.Ack, ds map[string][]checker.Delivery) ([]checker.Ack, map[string][]checker.Delivery)) checker.Report {
	var acks []checker.Ack
	ds := map[string][]checker.Delivery{}
	h := checker.NewHistory()
	for i := 1; i <= n; i++ {
		u := baton.Update{ID: "x", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)}
		hash := baton.HashItem("t", u)
		h.Sent("t", u.MsgID)
		acks = append(acks, checker.Ack{Source: "s", Topic: "t", MsgID: u.MsgID, Seq: uint64(i), Hash: hash})
		for _, term := range []string{"a", "b"} {
			ds[term] = append(ds[term], checker.Delivery{Terminal: term, Topic: "t", Seq: uint64(i), ID: u.ID, Value: u.Value,
				MsgID: u.MsgID, Hash: hash, Epoch: 1, Publisher: "p1"})
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
			d["a"] = append(d["a"], checker.Delivery{Terminal: "a", Topic: "t", Seq: 11, ID: "x", Value: u.Value, MsgID: "ghost",
				Hash: baton.HashItem("t", u), Epoch: 1, Publisher: "p1"})
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
