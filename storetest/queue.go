package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/baton-pub/baton"
)

func queueTests() []test {
	return []test{
		{"AppendAssignsSeqsAndHashes", testAppendAssignsSeqsAndHashes},
		{"ItemsPaging", testItemsPaging},
		{"HugePositions", testHugePositions},
		{"ValuesRoundTrip", testValuesRoundTrip},
		{"AppendCopiesValues", testAppendCopiesValues},
		{"AppendIsAtomic", testAppendIsAtomic},
		{"ValuesNotRescanned", testValuesNotRescanned},
		{"AppendEmpty", testAppendEmpty},
		{"DuplicateAlone", testDuplicateAlone},
		{"DuplicateWithOtherContent", testDuplicateWithOtherContent},
		{"DuplicateInLaterBatch", testDuplicateInLaterBatch},
		{"DuplicateInSameBatch", testDuplicateInSameBatch},
		{"SeqOfHash", testSeqOfHash},
		{"TopicsAreIndependent", testTopicsAreIndependent},
		{"TopicsList", testTopicsList},
		{"TopicInfo", testTopicInfo},
		{"UnknownTopicReads", testUnknownTopicReads},
		{"InvalidInput", testQueueInvalidInput},
	}
}

func testAppendAssignsSeqsAndHashes(e *env) {
	topic := e.topic("")
	ups := newUpdates(e.t, 5)
	rs := e.append(topic, ups)
	var want []baton.Item
	for i, r := range rs {
		h := baton.HashItem(topic, ups[i])
		if r.Seq != uint64(i+1) || r.Hash != h || r.MsgID != ups[i].MsgID || r.Duplicate {
			e.t.Fatalf("receipt %d = %+v, want seq %d, hash %s, msg id %s, not duplicate [Q3, Q5]", i, r, i+1, h, ups[i].MsgID)
		}
		want = append(want, baton.Item{Topic: topic, Seq: r.Seq, ID: ups[i].ID, Value: ups[i].Value, MsgID: ups[i].MsgID, Hash: h})
	}
	got := e.items(topic, 0, pageAll)
	e.checkItems("Items after the first batch", got, want)
	for _, it := range got {
		e.checkNow(fmt.Sprintf("item %d IngestedAt", it.Seq), it.IngestedAt)
		if !it.Verify() {
			e.t.Fatalf("item %d does not verify", it.Seq)
		}
	}

	more := newUpdates(e.t, 3)
	rs = e.append(topic, more)
	for i, r := range rs {
		if r.Seq != uint64(6+i) || r.Duplicate {
			e.t.Fatalf("second batch receipt %d = %+v, want seq %d [Q5]", i, r, 6+i)
		}
		want = append(want, baton.Item{Topic: topic, Seq: r.Seq, ID: more[i].ID, Value: more[i].Value, MsgID: more[i].MsgID, Hash: baton.HashItem(topic, more[i])})
	}
	e.checkItems("Items after the second batch", e.items(topic, 0, pageAll), want)
}

func testItemsPaging(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 6)
	for _, tc := range []struct {
		after uint64
		limit int
		want  []baton.Item
	}{
		{0, 1, its[:1]},
		{0, 6, its},
		{0, 100, its},
		{2, 2, its[2:4]},
		{5, 10, its[5:]},
		{6, 10, nil},
		{100, 10, nil},
	} {
		e.checkItems(fmt.Sprintf("Items(after %d, limit %d)", tc.after, tc.limit), e.items(topic, tc.after, tc.limit), tc.want)
	}
	for _, limit := range []int{0, -1} {
		_, err := e.s.Items(e.ctx, topic, 0, limit)
		e.wantErr(err, baton.ErrInvalid, "Items with limit %d [Q7]", limit)
		e.wantField(err, "limit", "Items with limit %d [Q7]", limit)
	}
}

// testHugePositions: a position beyond any seq an engine can hold (SQLite
// keeps seqs as signed 64-bit integers) reads as "after the last seq":
// an empty page and no error, on every engine [Q7]. Trim up to such a
// position stops at the cursor, and a cosignature of such a size finds no
// checkpoint [K4].
func testHugePositions(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 2)
	l := e.acquire(topic, "node-a", liveTTL)
	e.commit(l, 0, its)
	e.noErr(e.s.AddCheckpoint(e.ctx, checkpointOf(l, 2)), "AddCheckpoint")
	for _, after := range []uint64{baton.MaxSeq, baton.MaxSeq + 1, math.MaxUint64 - 1, math.MaxUint64} {
		what := fmt.Sprintf("after %d [Q7]", after)
		its, err := e.s.Items(e.ctx, topic, after, 10)
		e.noErr(err, "Items %s", what)
		ps, err := e.s.Published(e.ctx, topic, after, 10)
		e.noErr(err, "Published %s", what)
		ls, err := e.s.Leaves(e.ctx, topic, after, 10)
		e.noErr(err, "Leaves %s", what)
		cs, err := e.s.Checkpoints(e.ctx, topic, after, 10)
		e.noErr(err, "Checkpoints %s", what)
		if len(its)+len(ps)+len(ls)+len(cs) != 0 {
			e.t.Fatalf("%s: %d items, %d published, %d leaves, %d checkpoints, want none", what, len(its), len(ps), len(ls), len(cs))
		}
		err = e.s.Cosign(e.ctx, topic, after, baton.Cosignature{Node: "w", Signature: []byte("s")})
		e.wantErr(err, baton.ErrNotFound, "Cosign size %d [K4]", after)
	}
	n, err := e.s.Trim(e.ctx, topic, math.MaxUint64)
	e.noErr(err, "Trim before 2^64-1")
	if n != 1 || len(e.items(topic, 1, 10)) != 1 {
		e.t.Fatalf("Trim before 2^64-1 deleted %d, want 1: the cursor's item is kept", n)
	}
}

func testValuesRoundTrip(e *env) {
	topic := e.topic("")
	values := []string{
		`"a string"`,
		`42`,
		`-1.5e-7`,
		`true`,
		`null`,
		`[]`,
		`{}`,
		`[1,"two",{"three":[3]}]`,
		`{"unicode":"日本語 ✓ \u0000 \ud83d\ude00","esc":"\"\\\/"}`,
		`{"big":"` + strings.Repeat("x", 64<<10) + `"}`,
	}
	var ups []baton.Update
	for i, v := range values {
		u, err := baton.Normalize(baton.Update{ID: fmt.Sprintf("v.%d", i), Value: json.RawMessage(v)})
		e.noErr(err, "Normalize(%.40s)", v)
		ups = append(ups, u)
	}
	rs := e.append(topic, ups)
	got := e.items(topic, 0, pageAll)
	if len(got) != len(ups) {
		e.t.Fatalf("Items: %d, want %d", len(got), len(ups))
	}
	for i, it := range got {
		if !bytes.Equal(it.Value, ups[i].Value) {
			e.t.Fatalf("value %d: got %.80s, want %.80s [Q3]", i, it.Value, ups[i].Value)
		}
		if it.MsgID != ups[i].MsgID || it.Hash != rs[i].Hash || !it.Verify() {
			e.t.Fatalf("item %d: msg id %q hash %s, want %q %s, verifying", i, it.MsgID, it.Hash, ups[i].MsgID, rs[i].Hash)
		}
	}
}

func testAppendCopiesValues(e *env) {
	topic := e.topic("")
	ups := newUpdates(e.t, 1)
	orig := slices.Clone(ups[0].Value)
	e.append(topic, ups)
	for i := range ups[0].Value {
		ups[0].Value[i] = ' ' // the caller reuses its buffer
	}
	got := e.items(topic, 0, 1)
	if !bytes.Equal(got[0].Value, orig) {
		e.t.Fatalf("the store kept the caller's buffer: value now %q, want %q [Q3]", got[0].Value, orig)
	}
	for i := range got[0].Value {
		got[0].Value[i] = ' ' // a reader scribbles over what it was given
	}
	if again := e.items(topic, 0, 1); !bytes.Equal(again[0].Value, orig) {
		e.t.Fatalf("the store handed out its own buffer: value now %q, want %q [Q3]", again[0].Value, orig)
	}
}

func testAppendIsAtomic(e *env) {
	topic := e.topic("")
	good := newUpdates(e.t, 2)
	msgID := func(tag string) string { return "m-" + tag + "-" + runID }
	one := json.RawMessage(`1`)
	for _, tc := range []struct {
		name, field string // field: the InvalidError's, for the update at index 1
		bad         baton.Update
	}{
		{"no msg id", "msg_id", baton.Update{ID: "x", Value: one}},
		{"no id", "id", baton.Update{Value: one, MsgID: msgID("no-id")}},
		{"no value", "value", baton.Update{ID: "x", MsgID: msgID("no-value")}},
		{"an empty value", "value", baton.Update{ID: "x", Value: json.RawMessage{}, MsgID: msgID("empty-value")}},
		{"an id too long", "id", baton.Update{ID: strings.Repeat("x", baton.MaxIDLen+1), Value: one, MsgID: msgID("long-id")}},
		{"an id with a control character", "id", baton.Update{ID: "x\n", Value: one, MsgID: msgID("ctl-id")}},
		{"an id not UTF-8", "id", baton.Update{ID: "x\xff", Value: one, MsgID: msgID("utf8-id")}},
		{"a msg id too long", "msg_id", baton.Update{ID: "x", Value: one, MsgID: strings.Repeat("m", baton.MaxMsgIDLen+1)}},
		{"a msg id with a control character", "msg_id", baton.Update{ID: "x", Value: one, MsgID: msgID("ctl") + "\x7f"}},
		{"a msg id not UTF-8", "msg_id", baton.Update{ID: "x", Value: one, MsgID: msgID("utf8") + "\xfe"}},
		{"a msg id with an unpaired surrogate", "msg_id", baton.Update{ID: "x", Value: one, MsgID: msgID("surrogate") + "\xed\xa0\x80"}},
		{"an id with a C1 control", "id", baton.Update{ID: "x\u0085", Value: one, MsgID: msgID("c1-id")}},
		{"an id with a line separator", "id", baton.Update{ID: "x\u2028", Value: one, MsgID: msgID("ls-id")}},
		{"a msg id with a paragraph separator", "msg_id", baton.Update{ID: "x", Value: one, MsgID: msgID("ps") + "\u2029"}},
		{"an id with a bidi override", "id", baton.Update{ID: "x\u202e", Value: one, MsgID: msgID("bidi-id")}},
		{"a msg id with a bidi isolate", "msg_id", baton.Update{ID: "x", Value: one, MsgID: msgID("iso") + "\u2066"}},
	} {
		batch := []baton.Update{good[0], tc.bad, good[1]}
		_, err := e.s.Append(e.ctx, topic, batch)
		e.wantErr(err, baton.ErrInvalid, "Append of a batch with an update with %s [Q2]", tc.name)
		e.wantField(err, "items[1]."+tc.field, "Append of a batch with an update with %s [Q2]", tc.name)
	}
	// Ids at their limits are fine.
	edge := baton.Update{ID: strings.Repeat("x", baton.MaxIDLen), Value: one, MsgID: strings.Repeat("m", baton.MaxMsgIDLen-len(runID)) + runID}
	if rs := e.append(e.topic("edge"), []baton.Update{edge}); rs[0].Seq != 1 {
		e.t.Fatalf("Append of ids at their limits: %+v [Q2]", rs)
	}
	if _, err := e.s.Topic(e.ctx, topic); !isErr(err, baton.ErrNotFound) {
		e.t.Fatalf("after refused batches: Topic = %v, want ErrNotFound: nothing created [Q2]", err)
	}
	if slices.Contains(e.topics(), topic) {
		e.t.Fatal("after refused batches: Topics lists the topic [Q2]")
	}
	// The good updates of the refused batches were not taken: they append now
	// as new items.
	rs := e.append(topic, good)
	for i, r := range rs {
		if r.Duplicate || r.Seq != uint64(i+1) {
			e.t.Fatalf("receipt %d after refused batches = %+v, want new item seq %d [Q2]", i, r, i+1)
		}
	}

	// A refused batch on a topic that has items adds none.
	_, err := e.s.Append(e.ctx, topic, append(newUpdates(e.t, 2), baton.Update{ID: "x", Value: json.RawMessage(`1`)}))
	e.wantErr(err, baton.ErrInvalid, "Append of a batch ending with an update with no msg id")
	if ti := e.topicInfo(topic); ti.LastSeq != 2 {
		e.t.Fatalf("a refused batch moved LastSeq to %d, want 2 [Q2]", ti.LastSeq)
	}
}

// testValuesNotRescanned: a value's JSON is the caller's to check (the
// precondition of baton.Queue.Append): the store keeps and hashes what it is
// given, so that every engine answers alike and the value is scanned once,
// where it enters.
func testValuesNotRescanned(e *env) {
	topic := e.topic("")
	var ups []baton.Update
	for i, v := range []string{`{"a": 1}`, " 1 ", `{"a":`, `not json`, "\"\xff\""} {
		ups = append(ups, baton.Update{ID: fmt.Sprintf("raw.%d", i), Value: json.RawMessage(v), MsgID: fmt.Sprintf("m-raw-%s-%d", runID, i)})
	}
	rs := e.append(topic, ups)
	got := e.items(topic, 0, pageAll)
	if len(got) != len(ups) {
		e.t.Fatalf("Items: %d, want %d [Q9]", len(got), len(ups))
	}
	for i, it := range got {
		if !bytes.Equal(it.Value, ups[i].Value) || it.Hash != baton.HashItem(topic, ups[i]) || rs[i].Hash != it.Hash {
			e.t.Fatalf("value %q came back as %q, hash %s (receipt %s), want it kept and hashed as given [Q9]", ups[i].Value, it.Value, it.Hash, rs[i].Hash)
		}
	}
}

func testAppendEmpty(e *env) {
	topic := e.topic("")
	for _, ups := range [][]baton.Update{nil, {}} {
		rs, err := e.s.Append(e.ctx, topic, ups)
		e.noErr(err, "Append of an empty batch [Q1]")
		if len(rs) != 0 {
			e.t.Fatalf("Append of an empty batch: receipts %+v, want none [Q1]", rs)
		}
	}
	if _, err := e.s.Topic(e.ctx, topic); !isErr(err, baton.ErrNotFound) {
		e.t.Fatalf("after an empty Append: Topic = %v, want ErrNotFound [Q1]", err)
	}
	if slices.Contains(e.topics(), topic) {
		e.t.Fatal("an empty Append created the topic [Q1]")
	}
	e.appendN(topic, 1)
	rs, err := e.s.Append(e.ctx, topic, nil)
	e.noErr(err, "Append of an empty batch to a topic with items")
	if len(rs) != 0 || e.topicInfo(topic).LastSeq != 1 {
		e.t.Fatalf("an empty Append changed the queue")
	}
}

func testDuplicateAlone(e *env) {
	topic := e.topic("")
	ups := newUpdates(e.t, 1)
	first := e.append(topic, ups)[0]
	for range 2 {
		again := e.append(topic, ups)[0]
		if !again.Duplicate || again.Seq != first.Seq || again.Hash != first.Hash || again.MsgID != first.MsgID {
			e.t.Fatalf("re-append receipt %+v, want a duplicate of %+v [Q4]", again, first)
		}
	}
	if ti := e.topicInfo(topic); ti.LastSeq != 1 {
		e.t.Fatalf("duplicates moved LastSeq to %d, want 1 [Q4]", ti.LastSeq)
	}
	if its := e.items(topic, 0, pageAll); len(its) != 1 {
		e.t.Fatalf("duplicates added items: %v [Q4]", seqsOf(its))
	}
}

func testDuplicateWithOtherContent(e *env) {
	topic := e.topic("")
	ups := newUpdates(e.t, 1)
	first := e.append(topic, ups)[0]
	other := ups[0]
	other.ID = "another.id"
	other.Value = json.RawMessage(`{"other":true}`)
	again := e.append(topic, []baton.Update{other})[0]
	if !again.Duplicate || again.Seq != first.Seq || again.Hash != first.Hash {
		e.t.Fatalf("same msg id, other content: receipt %+v, want a duplicate of %+v with the original hash [Q4]", again, first)
	}
	its := e.items(topic, 0, pageAll)
	if len(its) != 1 || its[0].ID != ups[0].ID || !bytes.Equal(its[0].Value, ups[0].Value) {
		e.t.Fatalf("the original item changed: %+v", its)
	}
}

func testDuplicateInLaterBatch(e *env) {
	topic := e.topic("")
	old := newUpdates(e.t, 3)
	oldRs := e.append(topic, old)
	fresh := newUpdates(e.t, 2)
	batch := []baton.Update{fresh[0], old[1], fresh[1], old[2]}
	rs := e.append(topic, batch)
	want := []baton.Receipt{
		{Seq: 4, Hash: baton.HashItem(topic, fresh[0]), MsgID: fresh[0].MsgID},
		{Seq: oldRs[1].Seq, Hash: oldRs[1].Hash, MsgID: old[1].MsgID, Duplicate: true},
		{Seq: 5, Hash: baton.HashItem(topic, fresh[1]), MsgID: fresh[1].MsgID},
		{Seq: oldRs[2].Seq, Hash: oldRs[2].Hash, MsgID: old[2].MsgID, Duplicate: true},
	}
	for i := range rs {
		if rs[i] != want[i] {
			e.t.Fatalf("mixed batch receipt %d = %+v, want %+v [Q4]", i, rs[i], want[i])
		}
	}
	its := e.items(topic, 3, pageAll)
	if len(its) != 2 || its[0].MsgID != fresh[0].MsgID || its[1].MsgID != fresh[1].MsgID {
		e.t.Fatalf("items after the mixed batch: %+v, want the two fresh updates at 4 and 5 [Q4]", its)
	}
}

func testDuplicateInSameBatch(e *env) {
	topic := e.topic("")
	ups := newUpdates(e.t, 3)
	twin := ups[0]
	twin.Value = json.RawMessage(`{"twin":1}`)
	batch := []baton.Update{ups[0], ups[1], twin, ups[2], ups[1]}
	rs := e.append(topic, batch)
	h0, h1, h2 := baton.HashItem(topic, ups[0]), baton.HashItem(topic, ups[1]), baton.HashItem(topic, ups[2])
	want := []baton.Receipt{
		{Seq: 1, Hash: h0, MsgID: ups[0].MsgID},
		{Seq: 2, Hash: h1, MsgID: ups[1].MsgID},
		{Seq: 1, Hash: h0, MsgID: ups[0].MsgID, Duplicate: true},
		{Seq: 3, Hash: h2, MsgID: ups[2].MsgID},
		{Seq: 2, Hash: h1, MsgID: ups[1].MsgID, Duplicate: true},
	}
	for i := range rs {
		if rs[i] != want[i] {
			e.t.Fatalf("receipt %d of a batch with repeated msg ids = %+v, want %+v [Q4]", i, rs[i], want[i])
		}
	}
	its := e.items(topic, 0, pageAll)
	if len(its) != 3 {
		e.t.Fatalf("a batch with repeated msg ids added %d items, want 3 [Q4]", len(its))
	}
	if !bytes.Equal(its[0].Value, ups[0].Value) {
		e.t.Fatalf("item 1 = %s, want the first of the twins %s [Q4]", its[0].Value, ups[0].Value)
	}
}

func testSeqOfHash(e *env) {
	topic := e.topic("")
	its := e.appendN(topic, 7)
	for _, it := range its {
		seq, err := e.s.SeqOfHash(e.ctx, topic, it.Hash)
		e.noErr(err, "SeqOfHash(item %d)", it.Seq)
		if seq != it.Seq {
			e.t.Fatalf("SeqOfHash(item %d) = %d", it.Seq, seq)
		}
	}
	_, err := e.s.SeqOfHash(e.ctx, topic, baton.Hash{1, 2, 3})
	e.wantErr(err, baton.ErrNotFound, "SeqOfHash of an unknown hash")
	_, err = e.s.SeqOfHash(e.ctx, topic, baton.Hash{})
	e.wantErr(err, baton.ErrNotFound, "SeqOfHash of the zero hash")

	other := e.topic("other")
	otherIts := e.appendN(other, 1)
	_, err = e.s.SeqOfHash(e.ctx, topic, otherIts[0].Hash)
	e.wantErr(err, baton.ErrNotFound, "SeqOfHash of another topic's item hash: the index is per topic")
	_, err = e.s.SeqOfHash(e.ctx, e.topic("unknown"), its[0].Hash)
	e.wantErr(err, baton.ErrNotFound, "SeqOfHash on an unknown topic")
}

func testTopicsAreIndependent(e *env) {
	ta, tb := e.topic("a"), e.topic("b")
	ups := newUpdates(e.t, 3)
	ra := e.append(ta, ups)
	rb := e.append(tb, ups[:2]) // the same updates: other topic, other items
	for i, r := range rb {
		if r.Duplicate || r.Seq != uint64(i+1) || r.Hash != baton.HashItem(tb, ups[i]) {
			e.t.Fatalf("topic b receipt %d = %+v, want new item seq %d hashed with topic b [Q5]", i, r, i+1)
		}
		if r.Hash == ra[i].Hash {
			e.t.Fatalf("the same update has the same hash in two topics")
		}
	}
	e.appendN(ta, 1)
	if ia, ib := e.topicInfo(ta), e.topicInfo(tb); ia.LastSeq != 4 || ib.LastSeq != 2 {
		e.t.Fatalf("LastSeq a=%d b=%d, want 4 and 2", ia.LastSeq, ib.LastSeq)
	}
	for _, it := range e.items(tb, 0, pageAll) {
		if it.Topic != tb {
			e.t.Fatalf("Items(b) returned an item of topic %s", it.Topic)
		}
	}
	// Locks are per topic too.
	e.acquire(ta, "node-a", liveTTL)
	b := e.acquire(tb, "node-b", liveTTL)
	if b.Epoch != 1 {
		e.t.Fatalf("first epoch of topic b = %d, want 1 [L1]", b.Epoch)
	}
}

func testTopicsList(e *env) {
	queued, locked, never := e.topic("queued"), e.topic("locked"), e.topic("never")
	e.appendN(queued, 1)
	e.acquire(locked, "node-a", liveTTL)
	// Reads of a third topic must not create it [Q6].
	e.lock(never)
	e.items(never, 0, 10)
	e.cursor(never)
	ts := e.topics()
	if !slices.Contains(ts, queued) || !slices.Contains(ts, locked) {
		e.t.Fatalf("Topics = %v, want %s (appended) and %s (locked) in it [Q6]", ts, queued, locked)
	}
	if slices.Contains(ts, never) {
		e.t.Fatalf("Topics lists %s, which was only read [Q6]", never)
	}
	if !slices.IsSorted(ts) {
		e.t.Fatalf("Topics not sorted: %v [Q6]", ts)
	}
	if len(slices.Compact(slices.Clone(ts))) != len(ts) {
		e.t.Fatalf("Topics lists a topic twice: %v", ts)
	}
}

func testTopicInfo(e *env) {
	topic := e.topic("")
	_, err := e.s.Topic(e.ctx, topic)
	e.wantErr(err, baton.ErrNotFound, "Topic of an unknown topic [Q6]")
	e.appendN(topic, 4)
	if ti := e.topicInfo(topic); ti != (baton.TopicInfo{Topic: topic, FirstSeq: 1, LastSeq: 4}) {
		e.t.Fatalf("Topic = %+v, want {%s 1 4}", ti, topic)
	}
	locked := e.topic("locked")
	e.acquire(locked, "node-a", liveTTL)
	if ti := e.topicInfo(locked); ti != (baton.TopicInfo{Topic: locked}) {
		e.t.Fatalf("Topic of a topic only locked = %+v, want {%s 0 0} [Q6]", ti, locked)
	}
}

func testUnknownTopicReads(e *env) {
	topic := e.topic("")
	if its := e.items(topic, 0, 10); len(its) != 0 {
		e.t.Fatalf("Items of an unknown topic: %v", seqsOf(its))
	}
	if ps := e.published(topic, 0, 10); len(ps) != 0 {
		e.t.Fatalf("Published of an unknown topic: %d items", len(ps))
	}
	if ls := e.leaves(topic, 0, 10); len(ls) != 0 {
		e.t.Fatalf("Leaves of an unknown topic: %d leaves", len(ls))
	}
	if c := e.cursor(topic); c.Seq != 0 || !c.Hash.IsZero() || c.Epoch != 0 {
		e.t.Fatalf("Cursor of an unknown topic = %+v, want zero [Q7]", c)
	}
	if n, err := e.s.Trim(e.ctx, topic, 10); err != nil || n != 0 {
		e.t.Fatalf("Trim of an unknown topic = %d, %v; want 0, nil [T1]", n, err)
	}
	if _, err := e.s.Topic(e.ctx, topic); !isErr(err, baton.ErrNotFound) {
		e.t.Fatalf("after reads: Topic = %v, want ErrNotFound: reads never create a topic [Q6]", err)
	}
}

func testQueueInvalidInput(e *env) {
	topic := e.topic("")
	bad := "bad/topic"
	ups := newUpdates(e.t, 1)
	_, err := e.s.Append(e.ctx, bad, ups)
	e.wantErr(err, baton.ErrInvalid, "Append to an invalid topic [Q8]")
	_, err = e.s.Append(e.ctx, "", ups)
	e.wantErr(err, baton.ErrInvalid, "Append to an empty topic [Q8]")
	_, err = e.s.Append(e.ctx, strings.Repeat("t", baton.MaxTopicLen+1), ups)
	e.wantErr(err, baton.ErrInvalid, "Append to a topic of %d characters [Q8]", baton.MaxTopicLen+1)
	_, err = e.s.Items(e.ctx, bad, 0, 10)
	e.wantErr(err, baton.ErrInvalid, "Items of an invalid topic [Q8]")
	_, err = e.s.SeqOfHash(e.ctx, bad, baton.Hash{1})
	e.wantErr(err, baton.ErrInvalid, "SeqOfHash on an invalid topic [Q8]")
	_, err = e.s.Topic(e.ctx, bad)
	e.wantErr(err, baton.ErrInvalid, "Topic of an invalid topic [Q8]")
	_, err = e.s.Trim(e.ctx, bad, 10)
	e.wantErr(err, baton.ErrInvalid, "Trim of an invalid topic [Q8]")
	_, err = e.s.Cursor(e.ctx, bad)
	e.wantErr(err, baton.ErrInvalid, "Cursor of an invalid topic [Q8]")
	_, err = e.s.Published(e.ctx, bad, 0, 10)
	e.wantErr(err, baton.ErrInvalid, "Published of an invalid topic [Q8]")
	_, err = e.s.Leaves(e.ctx, bad, 0, 10)
	e.wantErr(err, baton.ErrInvalid, "Leaves of an invalid topic [Q8]")
	for _, limit := range []int{0, -5} {
		_, err = e.s.Published(e.ctx, topic, 0, limit)
		e.wantErr(err, baton.ErrInvalid, "Published with limit %d [Q7]", limit)
		_, err = e.s.Leaves(e.ctx, topic, 0, limit)
		e.wantErr(err, baton.ErrInvalid, "Leaves with limit %d [Q7]", limit)
	}
	if ts := e.topics(); slices.Contains(ts, bad) || slices.Contains(ts, "") {
		e.t.Fatalf("refused calls created a topic: %v", ts)
	}
}
