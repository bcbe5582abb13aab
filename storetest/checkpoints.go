package storetest

import (
	"bytes"
	"fmt"

	"github.com/baton-pub/baton"
)

// # Decisions: checkpoints (see baton.Checkpoints)
//
//   - K1 AddCheckpoint is fenced like Commit: only the live lease (Epoch,
//     Node) may add one, else ErrFenced; nothing is stored.
//   - K2 Size must be in (latest checkpoint's size, cursor]: else ErrInvalid.
//     A checkpoint without Node, Note or Size is ErrInvalid naming
//     "checkpoint" (baton.ValidateCheckpoint), before the lease is looked at.
//   - K3 Checkpoint returns the largest; Checkpoints lists by size ascending
//     from after; Note and Root round-trip byte for byte; At is stamped.
//   - K4 Cosign adds (or replaces, per node) a cosignature; cosignatures come
//     back sorted by node; Cosign of an unknown size is ErrNotFound; one
//     without Node or Signature is ErrInvalid naming "cosignature".
//   - K5 NodeKeys keeps every (node, key) pair a heartbeat registered, also
//     after Leave.
//   - K6 A Commit may carry a checkpoint of its own lease, of a size up to
//     its last item: it is stored with the commit if its size is above the
//     latest, else dropped while the commit goes on. One of another lease,
//     or beyond the commit, is ErrInvalid and nothing is committed.
func checkpointTests() []test {
	return []test{
		{"AddAndRead", testCheckpointAddAndRead},
		{"Fenced", testCheckpointFenced},
		{"SizeBounds", testCheckpointSizeBounds},
		{"Cosign", testCheckpointCosign},
		{"NodeKeys", testNodeKeys},
		{"WithCommit", testCheckpointWithCommit},
	}
}

func checkpointOf(l baton.Lease, size uint64) baton.Checkpoint {
	var root baton.Hash
	root[0], root[31] = byte(size), 0xff
	return baton.Checkpoint{Topic: l.Topic, Size: size, Root: root, Epoch: l.Epoch, Node: l.Holder,
		Note: fmt.Appendf(nil, "baton/%s\n%d\nroot\n\n— %s sig%d\n", l.Topic, size, l.Holder, size)}
}

func (e *env) checkCheckpoint(what string, got, want baton.Checkpoint) {
	e.t.Helper()
	if got.Topic != want.Topic || got.Size != want.Size || got.Root != want.Root || got.Epoch != want.Epoch ||
		got.Node != want.Node || !bytes.Equal(got.Note, want.Note) {
		e.t.Fatalf("%s: got {%s size %d root %s epoch %d node %s note %q}, want {%s size %d root %s epoch %d node %s note %q}", what,
			got.Topic, got.Size, got.Root, got.Epoch, got.Node, got.Note, want.Topic, want.Size, want.Root, want.Epoch, want.Node, want.Note)
	}
	e.checkNow(what+" At", got.At)
}

func testCheckpointAddAndRead(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 6)
	l := e.acquire(topic, "node-a", liveTTL)
	if _, err := e.s.Checkpoint(e.ctx, topic); !isErr(err, baton.ErrNotFound) {
		e.t.Fatalf("[K3] Checkpoint with none stored: got %v, want ErrNotFound", err)
	}
	e.commit(l, 0, its[:3])
	c3 := checkpointOf(l, 3)
	e.noErr(e.s.AddCheckpoint(e.ctx, c3), "[K1] AddCheckpoint size 3")
	e.commit(l, 3, its[3:])
	c6 := checkpointOf(l, 6)
	e.noErr(e.s.AddCheckpoint(e.ctx, c6), "[K1] AddCheckpoint size 6")

	got, err := e.s.Checkpoint(e.ctx, topic)
	e.noErr(err, "Checkpoint")
	e.checkCheckpoint("[K3] Checkpoint", got, c6)
	all, err := e.s.Checkpoints(e.ctx, topic, 0, 10)
	e.noErr(err, "Checkpoints")
	if len(all) != 2 {
		e.t.Fatalf("[K3] Checkpoints(after 0): %d, want 2", len(all))
	}
	e.checkCheckpoint("[K3] Checkpoints[0]", all[0], c3)
	e.checkCheckpoint("[K3] Checkpoints[1]", all[1], c6)
	tail, err := e.s.Checkpoints(e.ctx, topic, 3, 10)
	e.noErr(err, "Checkpoints(after 3)")
	if len(tail) != 1 || tail[0].Size != 6 {
		e.t.Fatalf("[K3] Checkpoints(after 3): %d checkpoints, want the one of size 6", len(tail))
	}
	if _, err := e.s.Checkpoints(e.ctx, topic, 0, 0); !isErr(err, baton.ErrInvalid) {
		e.t.Fatalf("[Q7] Checkpoints limit 0: got %v, want ErrInvalid", err)
	}
	none, err := e.s.Checkpoints(e.ctx, e.topic("unknown"), 0, 10)
	e.noErr(err, "Checkpoints of an unknown topic")
	if len(none) != 0 {
		e.t.Fatalf("Checkpoints of an unknown topic: %d", len(none))
	}
}

func testCheckpointFenced(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 4)
	l1 := e.acquire(topic, "node-a", liveTTL)
	e.commit(l1, 0, its[:2])
	e.release(l1, baton.ReasonReleased)
	// A released lease cannot add a checkpoint.
	err := e.s.AddCheckpoint(e.ctx, checkpointOf(l1, 2))
	e.wantErr(err, baton.ErrFenced, "[K1] AddCheckpoint by a released lease")
	l2 := e.acquire(topic, "node-b", liveTTL)
	e.commit(l2, 2, its[2:])
	// The stale epoch stays fenced, and so does a wrong holder.
	e.wantErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l1, 4)), baton.ErrFenced, "[K1] AddCheckpoint under a stale epoch")
	bad := l2
	bad.Holder = "node-a"
	e.wantErr(e.s.AddCheckpoint(e.ctx, checkpointOf(bad, 4)), baton.ErrFenced, "[K1] AddCheckpoint by the wrong holder")
	if _, err := e.s.Checkpoint(e.ctx, topic); !isErr(err, baton.ErrNotFound) {
		e.t.Fatalf("[K1] a refused checkpoint was stored: Checkpoint gives %v", err)
	}
	e.noErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l2, 4)), "AddCheckpoint by the live lease")
	// A lapsed lease is fenced too.
	e.lapse(l2)
	e.wantErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l2, 4)), baton.ErrFenced, "[K1] AddCheckpoint by a lapsed lease")
}

func testCheckpointSizeBounds(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 5)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its[:3])
	e.wantErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 4)), baton.ErrInvalid, "[K2] AddCheckpoint beyond the cursor")
	e.noErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 3)), "AddCheckpoint at the cursor")
	e.wantErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 3)), baton.ErrInvalid, "[K2] AddCheckpoint of the same size again")
	e.wantErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 2)), baton.ErrInvalid, "[K2] AddCheckpoint of a smaller size")
	bad := checkpointOf(l, 3)
	bad.Topic = "bad topic"
	e.wantErr(e.s.AddCheckpoint(e.ctx, bad), baton.ErrInvalid, "[Q8] AddCheckpoint with a bad topic")
	for _, tc := range []struct {
		name string
		edit func(cp *baton.Checkpoint)
	}{
		{"no node", func(cp *baton.Checkpoint) { cp.Node = "" }},
		{"no note", func(cp *baton.Checkpoint) { cp.Note = nil }},
		{"size 0", func(cp *baton.Checkpoint) { cp.Size = 0 }},
	} {
		cp := checkpointOf(l, 3)
		tc.edit(&cp)
		e.wantField(e.s.AddCheckpoint(e.ctx, cp), "checkpoint", "[K2] AddCheckpoint with %s", tc.name)
	}
}

func testCheckpointCosign(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 2)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its)
	e.noErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 2)), "AddCheckpoint")
	e.wantErr(e.s.Cosign(e.ctx, topic, 1, baton.Cosignature{Node: "w1", Signature: []byte("x")}), baton.ErrNotFound, "[K4] Cosign of an unknown size")
	e.wantField(e.s.Cosign(e.ctx, topic, 2, baton.Cosignature{Signature: []byte("x")}), "cosignature", "[K4] Cosign without a node")
	e.wantField(e.s.Cosign(e.ctx, topic, 2, baton.Cosignature{Node: "w1"}), "cosignature", "[K4] Cosign without a signature")
	e.noErr(e.s.Cosign(e.ctx, topic, 2, baton.Cosignature{Node: "w2", Signature: []byte("— w2 sig\n")}), "Cosign w2")
	e.noErr(e.s.Cosign(e.ctx, topic, 2, baton.Cosignature{Node: "w1", Signature: []byte("— w1 old\n")}), "Cosign w1")
	e.noErr(e.s.Cosign(e.ctx, topic, 2, baton.Cosignature{Node: "w1", Signature: []byte("— w1 sig\n")}), "Cosign w1 again")
	cp, err := e.s.Checkpoint(e.ctx, topic)
	e.noErr(err, "Checkpoint")
	cs := cp.Cosignatures
	if len(cs) != 2 || cs[0].Node != "w1" || cs[1].Node != "w2" ||
		string(cs[0].Signature) != "— w1 sig\n" || string(cs[1].Signature) != "— w2 sig\n" {
		e.t.Fatalf("[K4] cosignatures: got %+v, want w1's latest then w2's", cs)
	}
	e.checkNow("[K4] cosignature At", cs[0].At)
	// Cosignatures do not touch the note.
	e.checkCheckpoint("[K4] checkpoint after cosigning", cp, checkpointOf(l, 2))
}

func testNodeKeys(e *env) {
	node := e.topic("node")
	k1, k2 := []byte("key-one-0123456789abcdef01234567"), []byte("key-two-0123456789abcdef01234567")
	e.noErr(e.s.Heartbeat(e.ctx, baton.Member{Node: node, State: baton.MemberIdle, PublicKey: k1}, liveTTL), "Heartbeat")
	e.noErr(e.s.Heartbeat(e.ctx, baton.Member{Node: node, State: baton.MemberIdle, PublicKey: k1}, liveTTL), "Heartbeat again")
	e.noErr(e.s.Heartbeat(e.ctx, baton.Member{Node: node, State: baton.MemberIdle, PublicKey: k2}, liveTTL), "Heartbeat with a new key")
	e.noErr(e.s.Leave(e.ctx, node), "Leave")
	keys, err := e.s.NodeKeys(e.ctx)
	e.noErr(err, "NodeKeys")
	var got [][]byte
	for _, k := range keys {
		if k.Node == node {
			got = append(got, k.PublicKey)
		}
	}
	if len(got) != 2 || !bytes.Equal(got[0], k1) || !bytes.Equal(got[1], k2) {
		e.t.Fatalf("[K5] NodeKeys of %s after Leave: got %q, want both keys in order", node, got)
	}
}

func testCheckpointWithCommit(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 6)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its[:2])
	c := commitOf(l, 2, its[2:4])
	cp := checkpointOf(l, 4)
	c.Checkpoint = &cp
	_, err := e.s.Commit(e.ctx, c)
	e.noErr(err, "[K6] Commit with a checkpoint of its last item")
	got, err := e.s.Checkpoint(e.ctx, topic)
	e.noErr(err, "Checkpoint")
	e.checkCheckpoint("[K6] checkpoint stored with the commit", got, cp)

	// Beyond the commit, or of another lease: refused, nothing committed.
	before := e.snapshot(topic)
	c = commitOf(l, 4, its[4:5])
	beyond := checkpointOf(l, 6)
	c.Checkpoint = &beyond
	_, err = e.s.Commit(e.ctx, c)
	e.wantErr(err, baton.ErrInvalid, "[K6] Commit with a checkpoint beyond its items")
	e.wantField(err, "checkpoint", "[K6] Commit with a checkpoint beyond its items")
	other := l
	other.Holder = "node-b"
	wrong := checkpointOf(other, 5)
	c.Checkpoint = &wrong
	_, err = e.s.Commit(e.ctx, c)
	e.wantErr(err, baton.ErrInvalid, "[K6] Commit with a checkpoint of another holder")
	e.wantField(err, "checkpoint", "[K6] Commit with a checkpoint of another holder")
	e.unchanged("[K6] refused commits", topic, before)

	// A stale size is dropped; the commit goes on.
	stale := checkpointOf(l, 3)
	c = commitOf(l, 4, its[4:])
	c.Checkpoint = &stale
	cur, err := e.s.Commit(e.ctx, c)
	e.noErr(err, "[K6] Commit with a stale checkpoint")
	if cur.Seq != 6 {
		e.t.Fatalf("[K6] cursor %d after the commit, want 6", cur.Seq)
	}
	got, err = e.s.Checkpoint(e.ctx, topic)
	e.noErr(err, "Checkpoint")
	e.checkCheckpoint("[K6] latest after a stale one was dropped", got, cp)
}
