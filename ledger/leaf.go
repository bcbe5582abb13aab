// Package ledger is Baton's shared publication ledger (docs/design.md,
// step 6): one append-only RFC 6962 Merkle log per topic whose leaves are
// the baton.Leaf records the publisher appends with every commit, signed
// checkpoints made by the lease holder, witnesses on every other node that
// mirror the log into a local copy and cosign what they checked, inclusion
// and consistency proofs, and a full audit. docs/ledger.md describes the
// design and the formats.
//
// The leaf with seq s is the leaf at index s-1: seqs start at 1 and the
// ledger has no gaps, since every commit appends exactly its items' leaves.
package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/baton-pub/baton"
)

// LeafVersion prefixes the canonical encoding of a leaf. A new encoding gets
// a new version; a log never mixes versions.
const LeafVersion = "baton.leaf.v1"

// Hasher is the RFC 6962 SHA-256 tree hasher every log uses.
var Hasher = rfc6962.DefaultHasher

// EncodeLeaf returns the canonical encoding of a leaf:
//
//	"baton.leaf.v1" || u32 len(topic) || topic || u64 seq || item hash (32)
//	|| u64 epoch || u32 len(publisher) || publisher || i64 publish time (Unix ns, 0 if zero)
//
// with every integer big-endian. The Merkle leaf hash is
// SHA-256(0x00 || encoding).
func EncodeLeaf(l baton.Leaf) []byte {
	b := make([]byte, 0, len(LeafVersion)+4+len(l.Topic)+8+32+8+4+len(l.Publisher)+8)
	return appendLeaf(b, l)
}

func appendLeaf(b []byte, l baton.Leaf) []byte {
	b = append(b, LeafVersion...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Topic)))
	b = append(b, l.Topic...)
	b = binary.BigEndian.AppendUint64(b, l.Seq)
	b = append(b, l.ItemHash[:]...)
	b = binary.BigEndian.AppendUint64(b, l.Epoch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Publisher)))
	b = append(b, l.Publisher...)
	var at int64
	if !l.At.IsZero() {
		at = l.At.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(at))
}

var errLeafEncoding = errors.New("bad leaf encoding")

// DecodeLeaf parses a canonical leaf encoding.
func DecodeLeaf(b []byte) (baton.Leaf, error) {
	var l baton.Leaf
	if len(b) < len(LeafVersion) || string(b[:len(LeafVersion)]) != LeafVersion {
		return l, fmt.Errorf("decode leaf: %w: not %s", errLeafEncoding, LeafVersion)
	}
	b = b[len(LeafVersion):]
	str := func() (string, bool) {
		if len(b) < 4 {
			return "", false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			return "", false
		}
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s, true
	}
	u64 := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	var ok bool
	if l.Topic, ok = str(); !ok {
		return l, fmt.Errorf("decode leaf: %w: topic", errLeafEncoding)
	}
	if l.Seq, ok = u64(); !ok || len(b) < 32 {
		return l, fmt.Errorf("decode leaf: %w: seq or item hash", errLeafEncoding)
	}
	copy(l.ItemHash[:], b[:32])
	b = b[32:]
	if l.Epoch, ok = u64(); !ok {
		return l, fmt.Errorf("decode leaf: %w: epoch", errLeafEncoding)
	}
	if l.Publisher, ok = str(); !ok {
		return l, fmt.Errorf("decode leaf: %w: publisher", errLeafEncoding)
	}
	at, ok := u64()
	if !ok || len(b) != 0 {
		return l, fmt.Errorf("decode leaf: %w: time or trailing bytes", errLeafEncoding)
	}
	if at != 0 {
		l.At = time.Unix(0, int64(at)).UTC()
	}
	return l, nil
}

// LeafHash is the Merkle leaf hash of l.
func LeafHash(l baton.Leaf) []byte {
	var buf [160]byte
	b := append(buf[:0], 0) // RFC 6962 leaf prefix
	b = appendLeaf(b, l)
	h := sha256.Sum256(b)
	return h[:]
}

// hashLeafEnc is the leaf hash of an encoding: SHA-256(0x00 || enc), as
// Hasher.HashLeaf, without its per-call allocations (the ledger's hot loop).
func hashLeafEnc(scratch *[]byte, enc []byte) []byte {
	b := append(append((*scratch)[:0], 0), enc...)
	*scratch = b
	h := sha256.Sum256(b)
	return h[:]
}

// hashChildren is SHA-256(0x01 || l || r), as Hasher.HashChildren.
func hashChildren(l, r []byte) []byte {
	var b [1 + 2*sha256.Size]byte
	b[0] = 1
	copy(b[1:], l)
	copy(b[1+sha256.Size:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}
