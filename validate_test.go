package baton_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// NormalizeCompact agrees with Normalize on updates whose value is valid,
// compact JSON.
func TestNormalizeCompact(t *testing.T) {
	for _, u := range []baton.Update{
		{ID: "a", Value: json.RawMessage(`1`)},
		{ID: "a", Value: json.RawMessage(`{"x":[1,"y"]}`), MsgID: "m"},
		{ID: "", Value: json.RawMessage(`1`)},
		{ID: "a\x00", Value: json.RawMessage(`1`)},
		{ID: "a\x7f", Value: json.RawMessage(`1`)},
		{ID: "\xff", Value: json.RawMessage(`1`)},
		{ID: strings.Repeat("x", baton.MaxIDLen+1), Value: json.RawMessage(`1`)},
		{ID: "a", Value: json.RawMessage(`1`), MsgID: strings.Repeat("x", baton.MaxMsgIDLen+1)},
		{ID: "a", Value: json.RawMessage(`1`), MsgID: "m\n"},
		{ID: "a"},
	} {
		got, err := baton.NormalizeCompact(u)
		want, wantErr := baton.Normalize(u)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("%+v: error %v, Normalize %v", u, err, wantErr)
		}
		if err != nil {
			continue
		}
		if got.ID != want.ID || !bytes.Equal(got.Value, want.Value) || (u.MsgID != "" && got.MsgID != u.MsgID) || got.MsgID == "" {
			t.Fatalf("%+v: got %+v, Normalize %+v", u, got, want)
		}
	}
}

// ValidateAppend names the field at fault as the HTTP API does, checks the
// ids as Normalize does, and does not scan values (Queue.Append's
// precondition).
func TestValidateAppend(t *testing.T) {
	ok := baton.Update{ID: "a", Value: json.RawMessage(`1`), MsgID: "m"}
	if err := baton.ValidateAppend("t", []baton.Update{ok, ok}); err != nil {
		t.Fatalf("a normalized batch: %v", err)
	}
	if err := baton.ValidateAppend("t", nil); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
	for _, v := range []string{`{"a": 1}`, `{"a":`, `not json`} {
		u := ok
		u.Value = json.RawMessage(v)
		if err := baton.ValidateAppend("t", []baton.Update{u}); err != nil {
			t.Fatalf("value %q: %v, want it left to the caller", v, err)
		}
	}
	if err := baton.ValidateAppend("bad topic", []baton.Update{ok}); fieldOf(err) != "topic" {
		t.Fatalf("a bad topic: %v", err)
	}
	for _, tc := range []struct {
		u     baton.Update
		field string
	}{
		{baton.Update{Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a\n", Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: strings.Repeat("x", baton.MaxIDLen+1), Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a", Value: ok.Value}, "msg_id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: "\xff"}, "msg_id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: strings.Repeat("x", baton.MaxMsgIDLen+1)}, "msg_id"},
		{baton.Update{ID: "a", MsgID: "m"}, "value"},
		// Not text, or text that would look like another id: see validText.
		{baton.Update{ID: "coll\xfe", Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a\xed\xa0\x80", Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a\u0080", Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a\u009f", Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a\u2028", Value: ok.Value, MsgID: "m"}, "id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: "\u2029"}, "msg_id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: "\u202a"}, "msg_id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: "\u202e"}, "msg_id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: "\u2066"}, "msg_id"},
		{baton.Update{ID: "a", Value: ok.Value, MsgID: "\u2069"}, "msg_id"},
	} {
		err := baton.ValidateAppend("t", []baton.Update{ok, tc.u})
		if want := "items[1]." + tc.field; fieldOf(err) != want || !errors.Is(err, baton.ErrInvalid) {
			t.Errorf("%+v: %v, want an invalid %s", tc.u, err, want)
		}
	}
}

// Ids may hold any other text, U+FFFD and the neighbours of the refused
// ranges included.
func TestValidateAppendText(t *testing.T) {
	for _, id := range []string{"\ufffd", "a\u00a0", "\u007e", "\u2027\u202f\u2065\u206a", "é😀"} {
		u := baton.Update{ID: id, Value: json.RawMessage(`1`), MsgID: id}
		if err := baton.ValidateAppend("t", []baton.Update{u}); err != nil {
			t.Errorf("id %q: %v", id, err)
		}
	}
}

// Normalize and NormalizeCompact refuse a value with a string that is not
// UTF-8 or escapes an unpaired surrogate: other parsers fail on it, or read
// a string whose hash a client cannot recompute.
func TestNormalizeValueText(t *testing.T) {
	for v, bad := range map[string]bool{
		"\"\xff\"": true, "{\"k\xc3\":1}": true, `"\ud800"`: true, `"\udc00"`: true, `"\ud800\ud800"`: true,
		`["\ud83d\u0041"]`: true, `"\uDBFF"`: true, `"x\ud83d"`: true, `{"a":"\\\udfff"}`: true,
		`"\ud83d\ude00"`: false, `"\uD83D\uDE00"`: false, `"\\ud800"`: false, `"\\\\ud800"`: false,
		`"\ufffd\u0041\n"`: false, `"é"`: false, `"\""`: false,
	} {
		for name, norm := range map[string]func(baton.Update) (baton.Update, error){"Normalize": baton.Normalize, "NormalizeCompact": baton.NormalizeCompact} {
			_, err := norm(baton.Update{ID: "a", Value: json.RawMessage(v)})
			if got := err != nil; got != bad || bad && fieldOf(err) != "value" {
				t.Errorf("%s(%s): %v, want refused %v", name, v, err, bad)
			}
		}
	}
}

func fieldOf(err error) string {
	var ie *baton.InvalidError
	if !errors.As(err, &ie) {
		return ""
	}
	return ie.Field
}

// Commit.Validate is the shape every engine checks; Commit.Leaves are the
// leaves every engine appends.
func TestCommitValidateAndLeaves(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	items := []baton.Item{{Topic: "t", Seq: 4, Hash: baton.Hash{4}}, {Topic: "t", Seq: 5, Hash: baton.Hash{5}}}
	good := baton.Commit{Topic: "t", Epoch: 2, Holder: "n1", PrevSeq: 3, Items: items, At: at}
	if err := good.Validate(); err != nil {
		t.Fatalf("a good commit: %v", err)
	}
	cp := &baton.Checkpoint{Topic: "t", Epoch: 2, Node: "n1", Size: 5, Note: []byte("note")}
	withCP := good
	withCP.Checkpoint = cp
	if err := withCP.Validate(); err != nil {
		t.Fatalf("a good commit with a checkpoint: %v", err)
	}
	for _, tc := range []struct {
		name, field string
		edit        func(c *baton.Commit)
	}{
		{"bad topic", "topic", func(c *baton.Commit) { c.Topic = "" }},
		{"no holder", "holder", func(c *baton.Commit) { c.Holder = "" }},
		{"no time", "at", func(c *baton.Commit) { c.At = time.Time{} }},
		{"no items", "items", func(c *baton.Commit) { c.Items = nil }},
		{"wrong prev seq", "items[0].seq", func(c *baton.Commit) { c.PrevSeq = 2 }},
		{"a gap", "items[1].seq", func(c *baton.Commit) { c.Items = []baton.Item{items[0], {Seq: 6}} }},
		{"a checkpoint of another holder", "checkpoint", func(c *baton.Commit) { k := *cp; k.Node = "n2"; c.Checkpoint = &k }},
		{"a checkpoint beyond the commit", "checkpoint", func(c *baton.Commit) { k := *cp; k.Size = 6; c.Checkpoint = &k }},
		{"a checkpoint of size 0", "checkpoint", func(c *baton.Commit) { k := *cp; k.Size = 0; c.Checkpoint = &k }},
		{"a checkpoint without a note", "checkpoint", func(c *baton.Commit) { k := *cp; k.Note = nil; c.Checkpoint = &k }},
	} {
		c := good
		tc.edit(&c)
		if err := c.Validate(); fieldOf(err) != tc.field || !errors.Is(err, baton.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid %s", tc.name, err, tc.field)
		}
	}

	ls := good.Leaves()
	if len(ls) != len(items) {
		t.Fatalf("%d leaves for %d items", len(ls), len(items))
	}
	for i, l := range ls {
		want := baton.Leaf{Topic: "t", Seq: items[i].Seq, ItemHash: items[i].Hash, Epoch: 2, Publisher: "n1", At: at}
		if l != want {
			t.Errorf("leaf %d = %+v, want %+v", i, l, want)
		}
	}
}

// The checks of the other operations name the field at fault.
func TestValidateOperations(t *testing.T) {
	l := baton.Lease{Topic: "t", Holder: "n1", Epoch: 1}
	cp := baton.Checkpoint{Topic: "t", Node: "n1", Size: 1, Note: []byte("n")}
	cs := baton.Cosignature{Node: "w", Signature: []byte("s")}
	for _, tc := range []struct {
		name, field string
		err         error
	}{
		{"lease", "", baton.ValidateLease("t", baton.NodeLease{Node: "n1", Epoch: 1})},
		{"lease: bad topic", "topic", baton.ValidateLease("", baton.NodeLease{Node: "n1", Epoch: 1})},
		{"lease: no holder", "holder", baton.ValidateLease("t", baton.NodeLease{Epoch: 1})},
		{"lease: no node epoch", "epoch", baton.ValidateLease("t", baton.NodeLease{Node: "n1"})},
		{"node lease", "", baton.ValidateNodeLease("n1", time.Second)},
		{"node lease: no node", "node", baton.ValidateNodeLease("", time.Second)},
		{"node lease: zero ttl", "ttl", baton.ValidateNodeLease("n1", 0)},
		{"node release: expired", "reason", baton.ValidateNodeRelease(baton.NodeLease{Node: "n1", Epoch: 1}, baton.ReasonExpired)},
		{"node release: no epoch", "epoch", baton.ValidateNodeRelease(baton.NodeLease{Node: "n1"}, baton.ReasonReleased)},
		{"release", "", baton.ValidateRelease(l, baton.ReasonFailed)},
		{"release: expired", "reason", baton.ValidateRelease(l, baton.ReasonExpired)},
		{"release: no holder", "holder", baton.ValidateRelease(baton.Lease{Topic: "t"}, baton.ReasonReleased)},
		{"heartbeat", "", baton.ValidateHeartbeat(baton.Member{Node: "n1"}, time.Second)},
		{"heartbeat: no node", "node", baton.ValidateHeartbeat(baton.Member{}, time.Second)},
		{"heartbeat: negative ttl", "ttl", baton.ValidateHeartbeat(baton.Member{Node: "n1"}, -time.Second)},
		{"leave: no node", "node", baton.ValidateLeave("")},
		{"checkpoint", "", baton.ValidateCheckpoint(cp)},
		{"checkpoint: no note", "checkpoint", baton.ValidateCheckpoint(baton.Checkpoint{Topic: "t", Node: "n1", Size: 1})},
		{"checkpoint: bad topic", "topic", baton.ValidateCheckpoint(baton.Checkpoint{Topic: "a b", Node: "n1", Size: 1, Note: []byte("n")})},
		{"cosign", "", baton.ValidateCosign("t", cs)},
		{"read", "", baton.ValidateRead("t", 1)},
		{"read: zero limit", "limit", baton.ValidateRead("t", 0)},
		{"read: bad topic", "topic", baton.ValidateRead("", 1)},
		{"cosign: no signature", "cosignature", baton.ValidateCosign("t", baton.Cosignature{Node: "w"})},
	} {
		if fieldOf(tc.err) != tc.field || (tc.field == "") != (tc.err == nil) {
			t.Errorf("%s: %v, want field %q", tc.name, tc.err, tc.field)
		}
	}
}

// FuzzNormalizeValueText checks Normalize's refusal of a value's text
// against encoding/json, which reads an invalid byte or an unpaired
// surrogate escape as U+FFFD: a valid value is refused exactly when its
// strings, so read, hold more U+FFFD than it asks for, literally or as an
// escape.
func FuzzNormalizeValueText(f *testing.F) {
	for _, v := range []string{
		`"a"`, "\"\xff\"", `"\ud800"`, `"\udc00"`, `"\ud83d\ude00"`, `"\\ud800"`, `"\\\ud800"`,
		`{"\ud800":1}`, `["\ufffd","\uFFFD","` + "\xef\xbf\xbd" + `"]`, `"\ud800\ud800\udc00"`,
		`"\ud83d\u0041"`, "{\"k\xc3\":[1,\"x\"]}", `"\ud800\\"`, `"\u00e9\n\t"`,
	} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) {
			return
		}
		_, err := baton.Normalize(baton.Update{ID: "a", Value: v})
		bad := fieldOf(err) == "value"
		if err != nil && !bad {
			t.Fatalf("%q: %v", v, err)
		}
		if want := hidesText(v); bad != want {
			t.Fatalf("%q: refused %v (%v), want %v", v, bad, err, want)
		}
	})
}

// hidesText reports whether encoding/json reads a string of the valid
// JSON value v with more U+FFFD than v asks for.
func hidesText(v []byte) bool {
	asked := bytes.Count(v, []byte("\ufffd"))
	for i := 0; i < len(v)-1; i++ {
		if v[i] == '\\' {
			if i+6 <= len(v) && strings.EqualFold(string(v[i+1:i+6]), "ufffd") {
				asked++
			}
			i++
		}
	}
	got := 0
	dec := json.NewDecoder(bytes.NewReader(v))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			got += strings.Count(s, "\ufffd")
		}
	}
	return got > asked
}
