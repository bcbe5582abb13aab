package baton_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
)

func TestValidTopic(t *testing.T) {
	for _, ok := range []string{"a", "quote.600519", "config_payments-v2", "A9", strings.Repeat("x", 128)} {
		if err := baton.ValidTopic(ok); err != nil {
			t.Errorf("ValidTopic(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "_a", "-a", "a/b", "a b", "a%20", "ä", strings.Repeat("x", 129), "a\x00"} {
		err := baton.ValidTopic(bad)
		var ie *baton.InvalidError
		if !errors.As(err, &ie) || ie.Field != "topic" || !errors.Is(err, baton.ErrInvalid) {
			t.Errorf("ValidTopic(%q) = %v, want an invalid topic error", bad, err)
		}
	}
}

func TestNormalizeAndHash(t *testing.T) {
	a, err := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`{ "px" : 1.5 , "s":"<&>" }`), MsgID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Value) != `{"px":1.5,"s":"<&>"}` {
		t.Fatalf("compacted value = %s", a.Value)
	}
	b, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`{"px":1.5,"s":"<&>"}`), MsgID: "m1"})
	if baton.HashItem("t", a) != baton.HashItem("t", b) {
		t.Fatal("white space changed the hash")
	}
	// Every field is in the hash, and lengths keep fields apart.
	for _, o := range []struct {
		topic string
		u     baton.Update
	}{
		{"t2", b},
		{"t", baton.Update{ID: "k2", Value: b.Value, MsgID: "m1"}},
		{"t", baton.Update{ID: "k", Value: b.Value, MsgID: "m2"}},
		{"t", baton.Update{ID: "k", Value: json.RawMessage(`{"px":1.6,"s":"<&>"}`), MsgID: "m1"}},
		{"t", baton.Update{ID: "km", Value: b.Value, MsgID: "1"}},
	} {
		if baton.HashItem(o.topic, o.u) == baton.HashItem("t", b) {
			t.Errorf("hash collision with %+v", o)
		}
	}
	c, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	if !strings.HasPrefix(c.MsgID, "srv-") {
		t.Fatalf("server msg id = %q", c.MsgID)
	}
	for _, bad := range []baton.Update{
		{Value: json.RawMessage(`1`)},
		{ID: "k"},
		{ID: "k", Value: json.RawMessage(`{`)},
		{ID: "a\nb", Value: json.RawMessage(`1`)},
		{ID: strings.Repeat("x", 257), Value: json.RawMessage(`1`)},
		{ID: "k", Value: json.RawMessage(`1`), MsgID: strings.Repeat("m", 129)},
		{ID: "\xff", Value: json.RawMessage(`1`)},
	} {
		if _, err := baton.Normalize(bad); !errors.Is(err, baton.ErrInvalid) {
			t.Errorf("Normalize(%+v) = %v, want invalid", bad, err)
		}
	}
}

// FuzzNormalize: whatever comes in, Normalize either refuses it as invalid
// or returns an update that is valid JSON, stable under a second
// Normalize, with a stable hash.
func FuzzNormalize(f *testing.F) {
	f.Add("k", `{"a": [1, 2, {"b": null}]}`, "m")
	f.Add("", `1`, "")
	f.Add("k", `"\u00e9"`, "x\x01")
	f.Fuzz(func(t *testing.T, id, value, msg string) {
		u, err := baton.Normalize(baton.Update{ID: id, Value: json.RawMessage(value), MsgID: msg})
		if err != nil {
			if !errors.Is(err, baton.ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if !json.Valid(u.Value) || u.MsgID == "" {
			t.Fatalf("bad normal form %+v", u)
		}
		v, err := baton.Normalize(u)
		if err != nil || string(v.Value) != string(u.Value) || v.MsgID != u.MsgID {
			t.Fatalf("not idempotent: %+v -> %+v (%v)", u, v, err)
		}
		if baton.HashItem("t", u) != baton.HashItem("t", v) {
			t.Fatal("hash not stable")
		}
	})
}

func FuzzParseHash(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := baton.ParseHash(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(h.String(), s) {
			t.Fatalf("round trip %q -> %q", s, h)
		}
	})
}

// A tombstone's hash differs from the same update's without the mark, and
// every other item's hash is the one made before tombstones existed (a
// known vector, so that no ledger made before changes).
func TestTombstoneHash(t *testing.T) {
	u := baton.Update{ID: "k", Value: json.RawMessage(`1`), MsgID: "m"}
	const before = "c75113948bc8a95b66b27eb942e9dcd0e07ff0cee228d48927600a23e2905170"
	if got := baton.HashItem("t", u).String(); got != before {
		t.Fatalf("hash of a plain item = %s, want %s", got, before)
	}
	d := u
	d.Deleted = true
	if baton.HashItem("t", d) == baton.HashItem("t", u) {
		t.Fatal("the tombstone mark is not in the hash")
	}
	it := baton.Item{Topic: "t", ID: "k", Value: d.Value, MsgID: "m", Hash: baton.HashItem("t", d), Deleted: true}
	if !it.Verify() {
		t.Fatal("a tombstone does not verify")
	}
	it.Deleted = false
	if it.Verify() {
		t.Fatal("a tombstone verifies without its mark")
	}
	n, err := baton.Normalize(baton.Update{ID: "k", Deleted: true})
	if err != nil || string(n.Value) != "null" || !n.Deleted {
		t.Fatalf("Normalize(tombstone without value) = %+v, %v", n, err)
	}
	if err := baton.ValidateAppend("t", []baton.Update{{ID: "k", MsgID: "m", Deleted: true}}); err == nil {
		t.Fatal("ValidateAppend took a tombstone that was not normalized")
	}
}
