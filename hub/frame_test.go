package hub

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// encodeFrame is NewFrame's general path, the reference for the fast path.
func encodeFrame(t *testing.T, p baton.Published) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("id: ")
	buf.WriteString(json.Number(jsonUint(p.Seq)).String())
	buf.WriteString("\nevent: item\ndata: ")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wire.Item{Seq: p.Seq, ID: p.ID, Value: p.Value, Hash: p.Hash, Epoch: p.Epoch, Publisher: p.Publisher, MsgID: p.MsgID, Deleted: p.Deleted}); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func jsonUint(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestFrameFastPath checks that the fast path makes exactly the encoder's
// bytes, and leaves to the encoder what it cannot.
func TestFrameFastPath(t *testing.T) {
	base := baton.Published{Item: baton.Item{Topic: "t", Seq: 42, ID: "quote.600519", MsgID: "src-1",
		Hash: baton.Hash{1, 2, 3, 0xff}}, Epoch: 7, Publisher: "n1"}
	cases := []struct {
		id, msgID, pub string
		value          string
		fast           bool
		deleted        bool
	}{
		{"q.1", "m-1", "n1", `null`, true, true}, // a tombstone
		{"q.é", "m-1", "n1", `null`, false, true},
		{"q.1", "m-1", "n1", `{"px":1.5,"s":"a<b>&c","n":null,"l":[1,2,{"x":"y"}]}`, true, false},
		{"q.1", "m-1", "n1", `"a string with \" and \\ and \u00e9"`, true, false},
		{"q.1", "m-1", "n1", `12345`, true, false},
		{"q.1", "m-1", "n1", `"caf` + "\u00e9" + `"`, false, false}, // non-ASCII value
		{"q.1", "m-1", "n1", `"line` + "\u2028" + `sep"`, false, false},
		{`q."1"`, "m-1", "n1", `1`, false, false},
		{"q.1", `m\1`, "n1", `1`, false, false},
		{"q.é", "m-1", "n1", `1`, false, false},
		// Invalid, so it breaks the store's precondition; not ASCII, so it
		// goes to the encoder, which reports it.
		{"q.1", "m-1", "n1", `{"a":"` + "\u00e9" + `"`, false, false},
	}
	for _, c := range cases {
		p := base
		p.ID, p.MsgID, p.Publisher, p.Value, p.Deleted = c.id, c.msgID, c.pub, json.RawMessage(c.value), c.deleted
		got, ok := appendFrame(p)
		if ok != c.fast {
			t.Errorf("%q %q: fast path %v, want %v", c.id, c.value, ok, c.fast)
			continue
		}
		f, err := NewFrame(p)
		if !json.Valid(p.Value) {
			if err == nil {
				t.Errorf("invalid value: no error")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		want := encodeFrame(t, p)
		if !bytes.Equal(f.SSE, want) {
			t.Errorf("NewFrame:\n got %q\nwant %q", f.SSE, want)
		}
		if ok && !bytes.Equal(got, want) {
			t.Errorf("fast path:\n got %q\nwant %q", got, want)
		}
		// A snapshot event is the item frame's data under its own name,
		// without the id line, by either path.
		ev, err := AppendEventSSE([]byte("x"), "snapshot", p)
		wantEv := "xevent: snapshot" + string(want[bytes.Index(want, []byte("\ndata: ")):])
		if err != nil || string(ev) != wantEv {
			t.Errorf("AppendEventSSE:\n got %q\nwant %q (%v)", ev, wantEv, err)
		}
	}
}

func BenchmarkNewFrame(b *testing.B) {
	p := baton.Published{Item: baton.Item{Topic: "t", Seq: 123456, ID: "quote.600519", MsgID: "src-123456",
		Value: json.RawMessage(`{"t":1732560000000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)},
		Epoch: 3, Publisher: "n1"}
	for range b.N {
		if _, err := NewFrame(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewFrameEncoder(b *testing.B) {
	p := baton.Published{Item: baton.Item{Topic: "t", Seq: 123456, ID: "quote.600519", MsgID: "src-123456",
		Value: json.RawMessage(`{"t":1732560000000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)},
		Epoch: 3, Publisher: "n1"}
	p.Publisher += "\u00e9" // not plain ASCII: the encoder's path
	for range b.N {
		if _, err := NewFrame(p); err != nil {
			b.Fatal(err)
		}
	}
}
