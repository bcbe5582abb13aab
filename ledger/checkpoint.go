package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/baton-pub/baton"
)

// Origin is the checkpoint origin line of a topic's log.
func Origin(topic string) string { return "baton/" + topic }

// Body is what a checkpoint states: the tlog checkpoint (origin, size, root)
// and two extension lines, "epoch N" and "node ID", naming the lease under
// which it was signed:
//
//	baton/quotes
//	1234
//	<base64 root>
//	epoch 7
//	node node-a
type Body struct {
	Topic string
	Size  uint64
	Root  baton.Hash
	Epoch uint64
	Node  string
}

// Marshal returns the note text of the body.
func (b Body) Marshal() []byte {
	cp := log.Checkpoint{Origin: Origin(b.Topic), Size: b.Size, Hash: b.Root[:]}
	out := cp.Marshal()
	return fmt.Appendf(out, "epoch %d\nnode %s\n", b.Epoch, b.Node)
}

// ParseBody parses a checkpoint note text.
func ParseBody(text []byte) (Body, error) {
	var cp log.Checkpoint
	rest, err := cp.Unmarshal(text)
	if err != nil {
		return Body{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	topic, ok := strings.CutPrefix(cp.Origin, "baton/")
	if !ok || baton.ValidTopic(topic) != nil {
		return Body{}, fmt.Errorf("parse checkpoint: origin %q is not baton/<topic>", cp.Origin)
	}
	if len(cp.Hash) != 32 {
		return Body{}, fmt.Errorf("parse checkpoint: root has %d bytes", len(cp.Hash))
	}
	b := Body{Topic: topic, Size: cp.Size}
	copy(b.Root[:], cp.Hash)
	var seenEpoch, seenNode bool
	for _, line := range strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "epoch":
			if b.Epoch, err = strconv.ParseUint(v, 10, 64); err != nil {
				return Body{}, fmt.Errorf("parse checkpoint: bad epoch line %q", line)
			}
			seenEpoch = true
		case "node":
			b.Node, seenNode = v, true
		}
	}
	if !seenEpoch || !seenNode || b.Node == "" {
		return Body{}, errors.New("parse checkpoint: missing epoch or node line")
	}
	if !bytes.Equal(b.Marshal(), text) {
		return Body{}, errors.New("parse checkpoint: not in canonical form")
	}
	return b, nil
}

// Sign makes a checkpoint of the body signed by key (which must be the
// body's node's).
func Sign(b Body, key *Key) (baton.Checkpoint, error) {
	if key.Node != b.Node {
		return baton.Checkpoint{}, fmt.Errorf("sign checkpoint: key of %s cannot sign for %s", key.Node, b.Node)
	}
	msg, err := note.Sign(&note.Note{Text: string(b.Marshal())}, key.signer)
	if err != nil {
		return baton.Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return baton.Checkpoint{Topic: b.Topic, Size: b.Size, Root: b.Root, Epoch: b.Epoch, Node: b.Node, Note: msg}, nil
}

// Cosign returns key's cosignature line over a checkpoint's note text.
func Cosign(text []byte, key *Key) (baton.Cosignature, error) {
	msg, err := note.Sign(&note.Note{Text: string(text)}, key.signer)
	if err != nil {
		return baton.Cosignature{}, fmt.Errorf("cosign checkpoint: %w", err)
	}
	return baton.Cosignature{Node: key.Node, Signature: msg[len(text)+1:]}, nil
}

// Text returns the note text (the body) of a checkpoint's note.
func Text(msg []byte) ([]byte, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("checkpoint note has no signature block")
	}
	return msg[:i+1], nil
}

// WithCosignatures is the checkpoint's note with every cosignature line
// appended: one signed note a client can check with any subset of the keys.
func WithCosignatures(cp baton.Checkpoint) []byte {
	out := bytes.Clone(cp.Note)
	for _, cs := range cp.Cosignatures {
		out = append(out, cs.Signature...)
	}
	return out
}

// Verified is what checking a checkpoint found.
type Verified struct {
	Body Body
	// Cosigners are the nodes whose cosignatures verify.
	Cosigners []string
	// BadCosignatures names each cosignature that does not verify and why.
	BadCosignatures []string
}

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// Verify checks a stored checkpoint: its note is signed by cp.Node with one
// of that node's keys, its body parses and states what the record says.
// Cosignatures are checked one by one; a bad one is reported in the result,
// not as an error.
func Verify(cp baton.Checkpoint, keys *Keys) (Verified, error) {
	var v Verified
	if !keys.Has(cp.Node) {
		return v, fmt.Errorf("checkpoint %s/%d: no registered key for signer %q: %w", cp.Topic, cp.Size, cp.Node, ErrBadSignature)
	}
	n, err := note.Open(cp.Note, keys.verifiers(cp.Node))
	if err != nil {
		return v, fmt.Errorf("checkpoint %s/%d: signature of %s does not verify: %v: %w", cp.Topic, cp.Size, cp.Node, err, ErrBadSignature)
	}
	b, err := ParseBody([]byte(n.Text))
	if err != nil {
		return v, fmt.Errorf("checkpoint %s/%d: %w", cp.Topic, cp.Size, err)
	}
	switch {
	case b.Topic != cp.Topic:
		return v, fmt.Errorf("checkpoint %s/%d: note is for topic %s", cp.Topic, cp.Size, b.Topic)
	case b.Size != cp.Size:
		return v, fmt.Errorf("checkpoint %s/%d: note says size %d", cp.Topic, cp.Size, b.Size)
	case b.Root != cp.Root:
		return v, fmt.Errorf("checkpoint %s/%d: note says root %s, record says %s", cp.Topic, cp.Size, b.Root, cp.Root)
	case b.Epoch != cp.Epoch:
		return v, fmt.Errorf("checkpoint %s/%d: note says epoch %d, record says %d", cp.Topic, cp.Size, b.Epoch, cp.Epoch)
	case b.Node != cp.Node:
		return v, fmt.Errorf("checkpoint %s/%d: note says node %s, record says %s", cp.Topic, cp.Size, b.Node, cp.Node)
	}
	v.Body = b
	text := []byte(n.Text)
	for _, cs := range cp.Cosignatures {
		if !keys.Has(cs.Node) {
			v.BadCosignatures = append(v.BadCosignatures, fmt.Sprintf("cosignature of %s: no registered key", cs.Node))
			continue
		}
		msg := append(append(bytes.Clone(text), '\n'), cs.Signature...)
		cn, err := note.Open(msg, keys.verifiers(cs.Node))
		if err != nil || len(cn.Sigs) != 1 || cn.Sigs[0].Name != cs.Node {
			v.BadCosignatures = append(v.BadCosignatures, fmt.Sprintf("cosignature of %s does not verify", cs.Node))
			continue
		}
		v.Cosigners = append(v.Cosigners, cs.Node)
	}
	return v, nil
}

// OpenPinned checks a signed checkpoint note (with any cosignature lines)
// against pinned keys: at least one signature must verify. It returns the
// body and the names of the nodes whose signatures verified.
func OpenPinned(msg []byte, keys *Keys) (Body, []string, error) {
	n, err := note.Open(msg, keys.verifiers(""))
	if err != nil {
		return Body{}, nil, fmt.Errorf("open checkpoint: %w", err)
	}
	b, err := ParseBody([]byte(n.Text))
	if err != nil {
		return Body{}, nil, err
	}
	var names []string
	for _, s := range n.Sigs {
		names = append(names, s.Name)
	}
	return b, names, nil
}
