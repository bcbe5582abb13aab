package baton

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Limits on names and sizes. They are part of the API and documented in
// docs/api.md.
const (
	MaxTopicLen = 128
	MaxIDLen    = 256
	MaxMsgIDLen = 128
	// MaxSeq is the largest seq or position the API takes (2^63-1): every
	// engine can hold it (SQLite keeps seqs as signed 64-bit integers). A
	// store read after a larger position is empty, as after the last seq.
	MaxSeq = 1<<63 - 1
	// ItemHashVersion prefixes the canonical encoding hashed by HashItem.
	ItemHashVersion = "baton.item.v1"
)

// deletedMark is the field a tombstone's hash encoding ends with.
const deletedMark = "deleted"

// NewMsgID returns a random server-made message id.
func NewMsgID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "srv-" + hex.EncodeToString(b[:])
}

// HashItem is the item hash: SHA-256 over the versioned canonical encoding
//
//	"baton.item.v1" || len(topic) topic || len(msg_id) msg_id || len(id) id || len(value) value
//
// with each length a big-endian uint32 and value the compacted JSON. A
// tombstone (Deleted) appends one more field, len("deleted") "deleted":
// the encoding of every other item, and so every hash and ledger made
// before tombstones existed, is unchanged (docs/ledger.md).
func HashItem(topic string, u Update) Hash {
	h := sha256.New()
	var n [4]byte
	put := func(s []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write(s)
	}
	h.Write([]byte(ItemHashVersion))
	put([]byte(topic))
	put([]byte(u.MsgID))
	put([]byte(u.ID))
	put(u.Value)
	if u.Deleted {
		put([]byte(deletedMark))
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// Verify recomputes the item's hash and reports whether it matches.
func (it Item) Verify() bool {
	return HashItem(it.Topic, it.Update()) == it.Hash
}
