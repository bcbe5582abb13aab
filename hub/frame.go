package hub

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Frame is one published item with its Server-Sent Events encoding, made once
// per batch and shared by every terminal.
type Frame struct {
	Item baton.Published
	// SSE is the complete event: "id: <seq>\nevent: item\ndata: <wire.Item>\n\n".
	SSE []byte
}

// NewFrame encodes p.
func NewFrame(p baton.Published) (Frame, error) {
	if f, ok := appendFrame(p); ok {
		return Frame{Item: p, SSE: f}, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(p.Value) + len(p.ID) + len(p.MsgID) + 256)
	buf.WriteString("id: ")
	buf.Write(strconv.AppendUint(nil, p.Seq, 10))
	buf.WriteString("\nevent: " + wire.EventItem + "\ndata: ")
	enc := json.NewEncoder(&buf)
	// The value must reach terminals byte for byte as stored, or they could
	// not check its hash: no HTML escaping.
	enc.SetEscapeHTML(false)
	err := enc.Encode(wire.ItemOf(p))
	if err != nil {
		// Only a stored value breaking the store's precondition (valid
		// JSON, see baton.Queue.Append) can get here.
		return Frame{}, fmt.Errorf("encode item %s/%d: %w", p.Topic, p.Seq, err)
	}
	// Encode compacts the value (stored compact already, so unchanged) and
	// escapes control characters in strings: data is one line, as SSE
	// requires. It ends with the newline that ends the data line.
	buf.WriteByte('\n')
	return Frame{Item: p, SSE: buf.Bytes()}, nil
}

// appendFrame is NewFrame's fast path, byte for byte what the encoder
// makes, for the common item: strings of printable ASCII other than '"'
// and '\\' (nothing to escape), and a value of printable ASCII, which the
// encoder would not change: it is stored compact, and no '<', '>', '&'
// matter (HTML escaping is off). It reports false when p does not qualify.
func appendFrame(p baton.Published) ([]byte, bool) {
	if !plainItem(p) {
		return nil, false
	}
	b := make([]byte, 0, len(p.Value)+len(p.ID)+len(p.MsgID)+len(p.Publisher)+160)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, p.Seq, 10)
	b = append(b, "\nevent: "+wire.EventItem...)
	return appendData(b, p), true
}

// AppendEventSSE appends p as an SSE event of type event with no id line
// (a snapshot's events, http/snapshot.go): the data of its "item" frame.
func AppendEventSSE(b []byte, event string, p baton.Published) ([]byte, error) {
	b = append(append(b, "event: "...), event...)
	if plainItem(p) {
		return appendData(b, p), nil
	}
	f, err := NewFrame(p)
	if err != nil {
		return nil, err
	}
	return append(b, f.SSE[bytes.Index(f.SSE, []byte("\ndata: ")):]...), nil
}

// plainItem reports whether appendData may encode p (see appendFrame).
func plainItem(p baton.Published) bool {
	return plainASCII(p.ID) && plainASCII(p.MsgID) && plainASCII(p.Publisher) && plainValue(p.Value)
}

// appendData appends "\ndata: <wire.Item>\n\n" for a plainItem.
func appendData(b []byte, p baton.Published) []byte {
	b = append(b, "\ndata: {\"seq\":"...)
	b = strconv.AppendUint(b, p.Seq, 10)
	b = append(b, `,"id":"`...)
	b = append(b, p.ID...)
	b = append(b, `","value":`...)
	b = append(b, p.Value...)
	b = append(b, `,"hash":"`...)
	b = hex.AppendEncode(b, p.Hash[:])
	b = append(b, `","epoch":`...)
	b = strconv.AppendUint(b, p.Epoch, 10)
	b = append(b, `,"publisher":"`...)
	b = append(b, p.Publisher...)
	b = append(b, `","msg_id":"`...)
	b = append(b, p.MsgID...)
	if p.Deleted {
		b = append(b, `","deleted":true`...)
		return append(b, "}\n\n"...)
	}
	return append(b, "\"}\n\n"...)
}

// plainASCII reports whether s needs no escaping in a JSON string.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// plainValue reports whether v can go into a frame as it is. A stored
// value is valid, compact JSON (the store's precondition, see
// baton.Queue.Append: checked once, where the value entered), so it is not
// scanned as JSON again; what is left to see is whether the encoder would
// rewrite it. Only printable ASCII values are taken, so that U+2028 and
// U+2029, which the encoder escapes, and invalid UTF-8 never need a look.
func plainValue(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c >= 0x7f || c < 0x20 {
			return false
		}
	}
	return true
}

func newFrames(ps []baton.Published) ([]Frame, error) {
	frames := make([]Frame, len(ps))
	for i := range ps {
		f, err := NewFrame(ps[i])
		if err != nil {
			return nil, err
		}
		frames[i] = f
	}
	return frames, nil
}

// AppendResetSSE appends the SSE reset event for a stream that continues at
// seq earliest. Its id is earliest-1, so that a client reconnecting with
// Last-Event-ID resumes at earliest.
func AppendResetSSE(b []byte, earliest uint64) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, earliest-1, 10)
	b = append(b, "\nevent: "+wire.EventReset+"\ndata: {\"earliest\":"...)
	b = strconv.AppendUint(b, earliest, 10)
	b = append(b, "}\n\n"...)
	return b
}
