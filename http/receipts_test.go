package http

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// encodeReflective is what writeJSON writes for v.
func encodeReflective(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func receiptsOf(msgIDs ...string) []baton.Receipt {
	rs := make([]baton.Receipt, len(msgIDs))
	for i, m := range msgIDs {
		rs[i] = baton.Receipt{Seq: uint64(i)*977 + 1, Hash: baton.HashItem("t", baton.Update{ID: "k", Value: json.RawMessage("1"), MsgID: m}), MsgID: m, Duplicate: i%2 == 1}
	}
	return rs
}

// TestPublishResponseMatchesEncoder: the hand-written receipts are the
// reflective encoder's bytes, for a batch, a lone object, no items, and
// msg ids that need escaping.
func TestPublishResponseMatchesEncoder(t *testing.T) {
	ids := []string{"m1", "", "a\"b", `back\slash`, "tab\there", "<html>&amp;", "é", "\u2028", "bad\xffutf8", "\x00", "~~~ !#$%"}
	rs := receiptsOf(ids...)
	cases := []wire.PublishResponse{
		{Items: rs},
		{Items: rs[:1], Receipt: &rs[0]},
		{Items: []baton.Receipt{}},
		{},
		{Items: receiptsOf("m-18446744073709551615")},
	}
	for i, resp := range cases {
		want := encodeReflective(t, resp)
		if got := appendPublishResponse(nil, resp); !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzPublishResponse(f *testing.F) {
	for _, s := range []string{"m1", "a\"b", "\xff", "\u2028<>&", "\x7f"} {
		f.Add(s, uint64(7), true)
	}
	f.Fuzz(func(t *testing.T, msgID string, seq uint64, dup bool) {
		r := baton.Receipt{Seq: seq, Hash: baton.Hash{1, 2, 3}, MsgID: msgID, Duplicate: dup}
		for _, resp := range []wire.PublishResponse{{Items: []baton.Receipt{r, r}}, {Items: []baton.Receipt{r}, Receipt: &r}} {
			if got, want := appendPublishResponse(nil, resp), encodeReflective(t, resp); !bytes.Equal(got, want) {
				t.Fatalf("got %s\nwant %s", got, want)
			}
		}
	})
}

func BenchmarkPublishResponse(b *testing.B) {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "src-7-" + string(rune('a'+i%26)) + "-123456"
	}
	resp := wire.PublishResponse{Items: receiptsOf(ids...)}
	b.Run("hand-written", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendPublishResponse(buf[:0], resp)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			encodeReflective(b, resp)
		}
	})
}
