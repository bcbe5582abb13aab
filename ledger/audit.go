package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"

	"github.com/baton-pub/baton"
)

// AuditStore is what an audit reads.
type AuditStore interface {
	Store
	Items(ctx context.Context, topic string, after uint64, limit int) ([]baton.Item, error)
	Topic(ctx context.Context, topic string) (baton.TopicInfo, error)
}

// Problem is one thing an audit found wrong, and where.
type Problem struct {
	Topic string `json:"topic"`
	// Where names the record: "leaf 17", "item 17", "checkpoint 1000",
	// "cursor", "epoch 3".
	Where string `json:"where"`
	What  string `json:"what"`
}

func (p Problem) String() string { return p.Topic + ": " + p.Where + ": " + p.What }

// AuditReport is the result of auditing one topic.
type AuditReport struct {
	Topic        string `json:"topic"`
	Leaves       uint64 `json:"leaves"`
	ItemsChecked uint64 `json:"items_checked"`
	ItemsTrimmed uint64 `json:"items_trimmed"`
	Checkpoints  int    `json:"checkpoints"`
	Cosignatures int    `json:"cosignatures"`
	Epochs       int    `json:"epochs"`
	// Reanchors are the topic's re-anchors, oldest first: each says which
	// witnessed leaves the store lost and who accepted the loss. A
	// re-anchor that verifies is reported here, not as a problem.
	Reanchors []ReanchorBody `json:"reanchors,omitempty"`
	Problems  []Problem      `json:"problems"`
	// Omitted counts problems beyond AuditOptions.MaxProblems.
	Omitted int `json:"omitted,omitempty"`
}

// OK reports whether the audit found nothing wrong.
func (r AuditReport) OK() bool { return len(r.Problems) == 0 }

// AuditOptions tune an audit.
type AuditOptions struct {
	// Batch is how many leaves and items are read at once. Default 5000.
	Batch int
	// MaxProblems bounds the problems listed (default 100); the rest are
	// counted in Omitted.
	MaxProblems int
	// Progress, if set, is called after every batch with the leaves done
	// and the total expected (the cursor).
	Progress func(topic string, done, total uint64)
}

type epochInfo struct {
	holder  string
	ended   bool
	lastSeq uint64
}

// auditReanchors reads the topic's re-anchors and checks their
// signatures; a bad one is a problem, and left out.
func auditReanchors(ctx context.Context, st AuditStore, topic string, keys *Keys, add func(where, format string, args ...any)) ([]ReanchorBody, error) {
	rs, err := st.Reanchors(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []ReanchorBody
	for i, r := range rs {
		b, err := VerifyReanchor(r, keys)
		if err != nil {
			add(fmt.Sprintf("re-anchor #%d", i+1), "%v", err)
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// checkReanchors compares the root of the leaves so far with every
// re-anchor from that seq.
func checkReanchors(ras []ReanchorBody, rng *compact.Range, add func(where, format string, args ...any)) {
	for _, b := range ras {
		if b.Seq != rng.End() {
			continue
		}
		var root baton.Hash
		if b.Seq == 0 {
			copy(root[:], Hasher.EmptyRoot())
		} else {
			h, _ := rng.GetRootHash(nil)
			root = toHash(h)
		}
		if root != b.Root {
			add(fmt.Sprintf("re-anchor %d", b.Seq), "root %s, but leaves 1..%d hash to %s (the store's ledger changed below the re-anchor)", b.Root, b.Seq, root)
		}
	}
}

// Audit checks everything the store holds about a topic's ledger:
//
//   - every leaf: seqs 1..n without gap, the topic, the lease of its epoch
//     is on record and was held by its publisher, epochs never go back, no
//     leaf after its epoch's lease ended (the release record's last seq);
//   - every item still kept: its content hashes to its hash, and that is the
//     hash in its leaf;
//   - every checkpoint: the signer's signature with a registered key, the
//     note states what the record says, the signer held the lease of its
//     epoch, epochs never go back, it covers no leaf of a later epoch, its
//     root is the root of the leaves, and every cosignature verifies;
//   - the cursor: at the last leaf, with its item hash and epoch;
//   - every re-anchor: its signature, and its root is the root of the
//     leaves up to its seq (the re-anchors themselves are reported).
//
// It returns an error only if the store cannot be read; what is wrong is in
// the report's Problems.
func Audit(ctx context.Context, st AuditStore, topic string, o AuditOptions) (AuditReport, error) {
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.MaxProblems <= 0 {
		o.MaxProblems = 100
	}
	rep := AuditReport{Topic: topic}
	add := func(where, format string, args ...any) {
		if len(rep.Problems) >= o.MaxProblems {
			rep.Omitted++
			return
		}
		rep.Problems = append(rep.Problems, Problem{Topic: topic, Where: where, What: fmt.Sprintf(format, args...)})
	}

	nks, err := st.NodeKeys(ctx)
	if err != nil {
		return rep, err
	}
	keys := NewKeys(nks)
	info, err := st.Topic(ctx, topic)
	if err != nil {
		return rep, err
	}
	cur, err := st.Cursor(ctx, topic)
	if err != nil {
		return rep, err
	}
	// Epochs: the release records and the current lock.
	epochs := make(map[uint64]*epochInfo)
	recs, err := st.Handovers(ctx, topic, 10000)
	if err != nil {
		return rep, err
	}
	for _, r := range recs {
		if e := epochs[r.Epoch]; e != nil {
			add(fmt.Sprintf("epoch %d", r.Epoch), "two release records (holders %s and %s)", e.holder, r.Holder)
		}
		epochs[r.Epoch] = &epochInfo{holder: r.Holder, ended: true, lastSeq: r.LastSeq}
	}
	lock, err := st.Lock(ctx, topic)
	if err != nil {
		return rep, err
	}
	if l := lock.Lease; l.Epoch > 0 && epochs[l.Epoch] == nil {
		epochs[l.Epoch] = &epochInfo{holder: l.Holder}
	}
	rep.Epochs = len(epochs)
	oldestKnown := uint64(0)
	if len(recs) == 10000 {
		oldestKnown = recs[len(recs)-1].Epoch
	}
	// Checkpoints, oldest first.
	var cps []baton.Checkpoint
	for after := uint64(0); ; {
		page, err := st.Checkpoints(ctx, topic, after, 1000)
		if err != nil {
			return rep, err
		}
		if len(page) == 0 {
			break
		}
		cps = append(cps, page...)
		after = page[len(page)-1].Size
	}
	rep.Checkpoints = len(cps)

	ras, err := auditReanchors(ctx, st, topic, keys, add)
	if err != nil {
		return rep, err
	}
	rep.Reanchors = ras

	// Stream the leaves, with the items of the same window.
	rng := rangeFactory.NewEmptyRange(0)
	checkReanchors(ras, rng, add) // a re-anchor from seq 0
	next := 0                     // next checkpoint to compare
	epochAt := make(map[uint64]uint64, len(cps))
	var prevEpoch uint64
	var cursorLeaf *baton.Leaf
	total := max(cur.Seq, info.LastSeq)
	for {
		ls, err := st.Leaves(ctx, topic, rng.End(), o.Batch)
		if err != nil {
			return rep, err
		}
		if len(ls) == 0 {
			break
		}
		from := rng.End()
		var items map[uint64]baton.Item
		if lastSeq := ls[len(ls)-1].Seq; info.FirstSeq > 0 && lastSeq >= info.FirstSeq {
			after := max(from, info.FirstSeq-1)
			its, err := st.Items(ctx, topic, after, o.Batch)
			if err != nil && !errors.Is(err, baton.ErrTrimmed) {
				return rep, err
			}
			items = make(map[uint64]baton.Item, len(its))
			for _, it := range its {
				items[it.Seq] = it
			}
		}
		for _, l := range ls {
			want := rng.End() + 1
			where := fmt.Sprintf("leaf %d", want)
			if l.Seq != want {
				add(where, "missing: the next stored leaf is %d (the ledger has a gap; later roots cannot match)", l.Seq)
				return rep, nil
			}
			if l.Topic != topic {
				add(where, "names topic %q", l.Topic)
			}
			e := epochs[l.Epoch]
			switch {
			case e == nil && l.Epoch >= oldestKnown:
				add(where, "epoch %d has no lease on record (no release record and not the current lock)", l.Epoch)
			case e != nil && e.holder != l.Publisher:
				add(where, "published by %s, but the lease of epoch %d was held by %s", l.Publisher, l.Epoch, e.holder)
			case e != nil && e.ended && l.Seq > e.lastSeq:
				add(where, "published under epoch %d after that lease ended at seq %d (a zombie publisher)", l.Epoch, e.lastSeq)
			}
			if l.Epoch < prevEpoch {
				add(where, "epoch %d after epoch %d at leaf %d: epochs went back (publishers overlapped)", l.Epoch, prevEpoch, l.Seq-1)
			}
			prevEpoch = max(prevEpoch, l.Epoch)
			if items != nil && l.Seq >= info.FirstSeq {
				it, ok := items[l.Seq]
				switch {
				case !ok:
					add(fmt.Sprintf("item %d", l.Seq), "published but missing from the queue (first kept is %d)", info.FirstSeq)
				case !it.Verify():
					add(fmt.Sprintf("item %d", l.Seq), "its content does not hash to its stored hash %s (the item was altered)", it.Hash)
					rep.ItemsChecked++
				case it.Hash != l.ItemHash:
					add(where, "item hash %s, but item %d in the queue hashes to %s (the leaf or the item was altered)", l.ItemHash, l.Seq, it.Hash)
					rep.ItemsChecked++
				default:
					rep.ItemsChecked++
				}
			} else {
				rep.ItemsTrimmed++
			}
			if err := rng.Append(LeafHash(l), nil); err != nil {
				return rep, err
			}
			if l.Seq == cur.Seq {
				lc := l
				cursorLeaf = &lc
			}
			checkReanchors(ras, rng, add)
			for next < len(cps) && cps[next].Size == rng.End() {
				cp := cps[next]
				epochAt[cp.Size] = l.Epoch
				h, _ := rng.GetRootHash(nil)
				if root := toHash(h); root != cp.Root {
					add(fmt.Sprintf("checkpoint %d", cp.Size), "root %s, but leaves 1..%d hash to %s (a leaf up to %d or the checkpoint was altered)",
						cp.Root, cp.Size, root, cp.Size)
				}
				next++
			}
			for next < len(cps) && cps[next].Size < rng.End() {
				next++ // sizes out of order: reported below
			}
		}
		if o.Progress != nil {
			o.Progress(topic, rng.End(), total)
		}
	}
	rep.Leaves = rng.End()

	// Checkpoints.
	var prevCP *baton.Checkpoint
	for i := range cps {
		cp := cps[i]
		where := fmt.Sprintf("checkpoint %d", cp.Size)
		rep.Cosignatures += len(cp.Cosignatures)
		if cp.Size > rep.Leaves {
			add(where, "covers %d leaves, but the ledger has %d", cp.Size, rep.Leaves)
		}
		v, err := Verify(cp, keys)
		if err != nil {
			add(where, "%v", stripPrefix(err, cp))
		}
		for _, bad := range v.BadCosignatures {
			add(where, "%s", bad)
		}
		if prevCP != nil && cp.Epoch < prevCP.Epoch {
			add(where, "epoch %d is below epoch %d of checkpoint %d: epochs went back", cp.Epoch, prevCP.Epoch, prevCP.Size)
		}
		if e := epochs[cp.Epoch]; e == nil && cp.Epoch >= oldestKnown {
			add(where, "signed under epoch %d, which has no lease on record", cp.Epoch)
		} else if e != nil && e.holder != cp.Node {
			add(where, "signed by %s, but the lease of epoch %d was held by %s", cp.Node, cp.Epoch, e.holder)
		}
		if le, ok := epochAt[cp.Size]; ok && le > cp.Epoch {
			add(where, "signed under epoch %d but covers leaf %d of the later epoch %d", cp.Epoch, cp.Size, le)
		}
		prevCP = &cps[i]
	}

	for _, b := range ras {
		if b.Seq > rep.Leaves {
			add(fmt.Sprintf("re-anchor %d", b.Seq), "resumes from seq %d, but the ledger has %d leaves", b.Seq, rep.Leaves)
		}
	}

	// The cursor.
	switch {
	case cur.Seq != rep.Leaves:
		add("cursor", "at seq %d, but the ledger has %d leaves (the cursor and the ledger must move together)", cur.Seq, rep.Leaves)
	case cursorLeaf != nil && cursorLeaf.ItemHash != cur.Hash:
		add("cursor", "hash %s is not the item hash %s of leaf %d", cur.Hash, cursorLeaf.ItemHash, cur.Seq)
	case cursorLeaf != nil && cursorLeaf.Epoch != cur.Epoch:
		add("cursor", "epoch %d is not the epoch %d of leaf %d", cur.Epoch, cursorLeaf.Epoch, cur.Seq)
	}
	for _, r := range recs {
		if r.LastSeq > rep.Leaves {
			add(fmt.Sprintf("epoch %d", r.Epoch), "release record says the last published seq was %d, but the ledger has %d leaves", r.LastSeq, rep.Leaves)
		}
	}
	return rep, nil
}

func toHash(b []byte) baton.Hash {
	var h baton.Hash
	copy(h[:], b)
	return h
}

// stripPrefix drops the "checkpoint topic/size: " prefix Verify adds.
func stripPrefix(err error, cp baton.Checkpoint) string {
	s := err.Error()
	p := fmt.Sprintf("checkpoint %s/%d: ", cp.Topic, cp.Size)
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
