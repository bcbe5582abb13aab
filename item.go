package baton

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
)

// Limits on names and sizes. They are part of the API and documented in
// docs/api.md.
const (
	MaxTopicLen = 128
	MaxIDLen    = 256
	MaxMsgIDLen = 128
	// ItemHashVersion prefixes the canonical encoding hashed by HashItem.
	ItemHashVersion = "baton.item.v1"
)

// ValidTopic checks a topic name: 1 to 128 characters from [A-Za-z0-9._-],
// starting with a letter or digit. Topics appear in URL paths and store keys,
// so the alphabet is kept small.
func ValidTopic(topic string) error {
	if topic == "" {
		return Invalidf("topic", "must not be empty")
	}
	if len(topic) > MaxTopicLen {
		return Invalidf("topic", "longer than %d characters", MaxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return Invalidf("topic", "must start with a letter or digit")
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return Invalidf("topic", "character %q not allowed (use A-Z a-z 0-9 . _ -)", c)
		}
	}
	return nil
}

// validText checks an id-like string: valid UTF-8, no control characters.
func validText(field, s string, max int) error {
	if len(s) > max {
		return Invalidf(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return Invalidf(field, "not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return Invalidf(field, "control character not allowed")
		}
	}
	return nil
}

// checkFields checks what Normalize and NormalizeCompact check alike, in
// the same order: id, msg id, a value present.
func checkFields(u Update) error {
	if u.ID == "" {
		return Invalidf("id", "missing")
	}
	if err := validText("id", u.ID, MaxIDLen); err != nil {
		return err
	}
	if err := validText("msg_id", u.MsgID, MaxMsgIDLen); err != nil {
		return err
	}
	if len(u.Value) == 0 {
		return Invalidf("value", "missing")
	}
	return nil
}

// Normalize validates an update and returns it in canonical form: the value
// compacted (insignificant JSON white space removed) and a msg id made by the
// server if the source gave none. It never modifies u's backing arrays.
func Normalize(u Update) (Update, error) {
	if err := checkFields(u); err != nil {
		return u, err
	}
	if !json.Valid(u.Value) {
		return u, Invalidf("value", "not valid JSON")
	}
	var buf bytes.Buffer
	buf.Grow(len(u.Value))
	if err := json.Compact(&buf, u.Value); err != nil {
		return u, Invalidf("value", "not valid JSON: %v", err)
	}
	u.Value = json.RawMessage(buf.Bytes())
	if u.MsgID == "" {
		u.MsgID = NewMsgID()
	}
	return u, nil
}

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
// with each length a big-endian uint32 and value the compacted JSON.
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
	var out Hash
	h.Sum(out[:0])
	return out
}

// Verify recomputes the item's hash and reports whether it matches.
func (it Item) Verify() bool {
	return HashItem(it.Topic, Update{ID: it.ID, Value: it.Value, MsgID: it.MsgID}) == it.Hash
}
