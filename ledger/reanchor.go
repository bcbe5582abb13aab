package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"

	"github.com/baton-pub/baton"
)

// ReanchorBody is what a re-anchor states (docs/ledger.md, "Lost writes and
// re-anchoring"): the store's ledger of Topic and the witnesses' copies
// agree on leaves 1..Seq, whose root is Root; the witnessed leaves after
// Seq are lost, up to the checkpoint Lost (size and root) that the signing
// node had accepted; the store's ledger stands from Seq on. Node signed it
// on the request of By (a token's subject, or "operator" on an open node),
// for Reason, at At (the signing node's clock). The note text:
//
//	baton/quotes
//	reanchor 120
//	<base64 root of leaves 1..120>
//	lost 250 <base64 root>
//	node node-a
//	by alice
//	at 2026-12-03T12:00:00Z
//	reason restored the 11:00 backup after a disk loss
//
// It cannot be taken for a checkpoint: its second line is not a size.
type ReanchorBody struct {
	Topic    string     `json:"topic"`
	Seq      uint64     `json:"seq"`
	Root     baton.Hash `json:"root"`
	LostSize uint64     `json:"lost_size"`
	LostRoot baton.Hash `json:"lost_root"`
	Node     string     `json:"node"`
	By       string     `json:"by"`
	At       time.Time  `json:"at"`
	Reason   string     `json:"reason"`
}

// MaxReason bounds a re-anchor's reason, in bytes.
const MaxReason = 500

// ValidReason checks a re-anchor's reason: one line of 1 to MaxReason
// bytes of printable text.
func ValidReason(reason string) error {
	if reason == "" || len(reason) > MaxReason {
		return baton.Invalidf("reason", "a reason of 1 to %d bytes is required", MaxReason)
	}
	for _, r := range reason {
		if !unicode.IsPrint(r) {
			return baton.Invalidf("reason", "one line of printable text is required")
		}
	}
	return nil
}

func b64(h baton.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// Marshal returns the note text of the body.
func (b ReanchorBody) Marshal() []byte {
	return fmt.Appendf(nil, "%s\nreanchor %d\n%s\nlost %d %s\nnode %s\nby %s\nat %s\nreason %s\n",
		Origin(b.Topic), b.Seq, b64(b.Root), b.LostSize, b64(b.LostRoot), b.Node, b.By,
		b.At.UTC().Format(time.RFC3339Nano), b.Reason)
}

// ParseReanchor parses a re-anchor note text.
func ParseReanchor(text []byte) (ReanchorBody, error) {
	var b ReanchorBody
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if len(lines) != 8 {
		return b, errors.New("parse re-anchor: want 8 lines")
	}
	topic, ok := strings.CutPrefix(lines[0], "baton/")
	if !ok || baton.ValidTopic(topic) != nil {
		return b, fmt.Errorf("parse re-anchor: origin %q is not baton/<topic>", lines[0])
	}
	b.Topic = topic
	field := func(i int, key string) string {
		v, ok := strings.CutPrefix(lines[i], key+" ")
		if !ok {
			return ""
		}
		return v
	}
	var err error
	bad := func(what string) (ReanchorBody, error) {
		return ReanchorBody{}, fmt.Errorf("parse re-anchor: bad %s line", what)
	}
	if b.Seq, err = strconv.ParseUint(field(1, "reanchor"), 10, 64); err != nil {
		return bad("reanchor")
	}
	if b.Root, err = parseB64Hash(lines[2]); err != nil {
		return bad("root")
	}
	size, root, _ := strings.Cut(field(3, "lost"), " ")
	if b.LostSize, err = strconv.ParseUint(size, 10, 64); err != nil {
		return bad("lost")
	}
	if b.LostRoot, err = parseB64Hash(root); err != nil {
		return bad("lost")
	}
	b.Node, b.By, b.Reason = field(4, "node"), field(5, "by"), field(7, "reason")
	if b.At, err = time.Parse(time.RFC3339Nano, field(6, "at")); err != nil {
		return bad("at")
	}
	if b.Node == "" || b.By == "" || ValidReason(b.Reason) != nil {
		return bad("node, by or reason")
	}
	if !bytes.Equal(b.Marshal(), text) {
		return ReanchorBody{}, errors.New("parse re-anchor: not in canonical form")
	}
	return b, nil
}

func parseB64Hash(s string) (baton.Hash, error) {
	var h baton.Hash
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != len(h) {
		return h, errors.New("not a base64 SHA-256 hash")
	}
	copy(h[:], raw)
	return h, nil
}

// SignReanchor makes the re-anchor record of the body, signed by key
// (which must be the body's node's).
func SignReanchor(b ReanchorBody, key *Key) (baton.Reanchor, error) {
	if key.Node != b.Node {
		return baton.Reanchor{}, fmt.Errorf("sign re-anchor: key of %s cannot sign for %s", key.Node, b.Node)
	}
	if strings.ContainsAny(b.By, " \n") || b.By == "" {
		return baton.Reanchor{}, baton.Invalidf("by", "one word is required")
	}
	if err := ValidReason(b.Reason); err != nil {
		return baton.Reanchor{}, err
	}
	msg, err := note.Sign(&note.Note{Text: string(b.Marshal())}, key.signer)
	if err != nil {
		return baton.Reanchor{}, fmt.Errorf("sign re-anchor: %w", err)
	}
	return baton.Reanchor{Topic: b.Topic, Note: msg}, nil
}

// VerifyReanchor checks a stored re-anchor: its note parses, is for the
// record's topic and is signed by its node with one of that node's keys.
func VerifyReanchor(r baton.Reanchor, keys *Keys) (ReanchorBody, error) {
	text, err := Text(r.Note)
	if err != nil {
		return ReanchorBody{}, fmt.Errorf("re-anchor of %s: %w", r.Topic, err)
	}
	b, err := ParseReanchor(text)
	if err != nil {
		return ReanchorBody{}, fmt.Errorf("re-anchor of %s: %w", r.Topic, err)
	}
	if b.Topic != r.Topic {
		return ReanchorBody{}, fmt.Errorf("re-anchor of %s: note is for topic %s", r.Topic, b.Topic)
	}
	if !keys.Has(b.Node) {
		return b, fmt.Errorf("re-anchor of %s at %d: no registered key for signer %q: %w", r.Topic, b.Seq, b.Node, ErrBadSignature)
	}
	if _, err := note.Open(r.Note, keys.verifiers(b.Node)); err != nil {
		return b, fmt.Errorf("re-anchor of %s at %d: signature of %s does not verify: %v: %w", r.Topic, b.Seq, b.Node, err, ErrBadSignature)
	}
	return b, nil
}
