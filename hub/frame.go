package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/baton-pub/baton"
)

// ItemData is the JSON data of an SSE "item" event: a published item as
// terminals see it.
type ItemData struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Value     json.RawMessage `json:"value"`
	Hash      baton.Hash      `json:"hash"`
	Epoch     uint64          `json:"epoch"`
	Publisher string          `json:"publisher"`
	MsgID     string          `json:"msg_id"`
}

// ResetData is the JSON data of an SSE "reset" event.
type ResetData struct {
	// Earliest is the earliest seq still kept; the stream continues there.
	Earliest uint64 `json:"earliest"`
}

// SSE event names.
const (
	EventNameItem  = "item"
	EventNameReset = "reset"
)

// Frame is one published item with its Server-Sent Events encoding, made once
// per batch and shared by every terminal.
type Frame struct {
	Item baton.Published
	// SSE is the complete event: "id: <seq>\nevent: item\ndata: <ItemData>\n\n".
	SSE []byte
}

// NewFrame encodes p.
func NewFrame(p baton.Published) (Frame, error) {
	var buf bytes.Buffer
	buf.Grow(len(p.Value) + len(p.ID) + len(p.MsgID) + 256)
	buf.WriteString("id: ")
	buf.Write(strconv.AppendUint(nil, p.Seq, 10))
	buf.WriteString("\nevent: " + EventNameItem + "\ndata: ")
	enc := json.NewEncoder(&buf)
	// The value must reach terminals byte for byte as stored, or they could
	// not check its hash: no HTML escaping.
	enc.SetEscapeHTML(false)
	err := enc.Encode(ItemData{
		Seq:       p.Seq,
		ID:        p.ID,
		Value:     p.Value,
		Hash:      p.Hash,
		Epoch:     p.Epoch,
		Publisher: p.Publisher,
		MsgID:     p.MsgID,
	})
	if err != nil {
		// Only an invalid stored value can get here: Normalize checked it
		// on the way in.
		return Frame{}, fmt.Errorf("encode item %s/%d: %w", p.Topic, p.Seq, err)
	}
	// Encode compacts the value (stored compact already, so unchanged) and
	// escapes control characters in strings: data is one line, as SSE
	// requires. It ends with the newline that ends the data line.
	buf.WriteByte('\n')
	return Frame{Item: p, SSE: buf.Bytes()}, nil
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
	b = append(b, "\nevent: "+EventNameReset+"\ndata: {\"earliest\":"...)
	b = strconv.AppendUint(b, earliest, 10)
	b = append(b, "}\n\n"...)
	return b
}
