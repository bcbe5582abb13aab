package baton

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// The checks of what callers hand the store, one per operation, shared by
// every engine; Normalize and NormalizeCompact are the checks of an update
// on its way in (the HTTP decoder, the CLI, tests).
//
// A value is checked as JSON once, where it enters: Normalize scans and
// compacts it, and the HTTP decoder does the same while it parses the body
// (then calls NormalizeCompact). The store takes "valid, compact JSON" as a
// precondition (see Queue.Append) and does not scan values again.

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

// validText checks an id-like string: valid UTF-8 (no unpaired surrogate
// either: the HTTP decoder keeps one as its invalid 3-byte form, so it is
// refused here), and no character that would make two ids look alike or
// break a line of a log or an SSE stream: C0 and C1 controls, DEL, the line
// and paragraph separators U+2028 and U+2029, and the bidirectional
// embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069.
func validText(field, s string, max int) error {
	if len(s) > max {
		return Invalidf(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return Invalidf(field, "not valid UTF-8")
	}
	for _, r := range s {
		if textForbidden(r) {
			return Invalidf(field, "character %U not allowed (no control, separator or bidi control characters)", r)
		}
	}
	return nil
}

// textForbidden reports whether r may not appear in an id: see validText.
func textForbidden(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r < 0x2028:
		return false
	}
	return r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// checkValueText checks the strings of a JSON value: valid UTF-8, and no
// \u escape of an unpaired surrogate. A parser in another language would
// fail on the whole page holding such a value, or read a string whose
// hash a client cannot recompute (RFC 7493, I-JSON). Outside strings JSON
// is ASCII, so the whole value is checked as UTF-8; a backslash only
// appears in a string, so the escapes are found without parsing.
func checkValueText(v []byte) error {
	if !utf8.Valid(v) {
		return Invalidf("value", "a string is not valid UTF-8")
	}
	for i := bytes.IndexByte(v, '\\'); i >= 0 && i+1 < len(v); {
		next := i + 2
		if v[i+1] == 'u' {
			r := hex4(v, i+2)
			next = i + 6
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return Invalidf("value", "a string has an unpaired surrogate escape")
			case r >= 0xd800 && r <= 0xdbff:
				if lo := hex4(v, i+8); i+7 >= len(v) || v[i+6] != '\\' || v[i+7] != 'u' || lo < 0xdc00 || lo > 0xdfff {
					return Invalidf("value", "a string has an unpaired surrogate escape")
				}
				next = i + 12
			}
		}
		j := bytes.IndexByte(v[min(next, len(v)):], '\\')
		if j < 0 {
			break
		}
		i = next + j
	}
	return nil
}

// hex4 reads the 4 hex digits at v[i:], -1 if there are not 4.
func hex4(v []byte, i int) rune {
	if i+4 > len(v) {
		return -1
	}
	var r rune
	for _, c := range v[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// checkFields checks what every update must have wherever it is checked,
// in this order: an id, a msg id that is valid text (it may be empty until
// normalized), a value. It does not scan the value.
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
	if len(u.Value) == 0 && !u.Deleted {
		return Invalidf("value", "missing")
	}
	return nil
}

// tombstoneValue is the value of a tombstone that was given none.
var tombstoneValue = json.RawMessage("null")

// itemField names a field of the i-th update of a batch in an error, as the
// HTTP API does: itemField(3, "id") is "items[3].id".
func itemField(i int, field string) string {
	return fmt.Sprintf("items[%d].%s", i, field)
}

// Normalize validates an update and returns it in canonical form: the value
// compacted (insignificant JSON white space removed), a tombstone's missing
// value made null, and a msg id made by the
// server if the source gave none. It never modifies u's backing arrays. It
// is how a caller other than the HTTP API meets Queue.Append's precondition.
func Normalize(u Update) (Update, error) {
	if err := checkFields(u); err != nil {
		return u, err
	}
	if len(u.Value) == 0 { // a tombstone (checkFields)
		u.Value = tombstoneValue
	}
	var buf bytes.Buffer
	buf.Grow(len(u.Value))
	if err := json.Compact(&buf, u.Value); err != nil {
		return u, Invalidf("value", "not valid JSON")
	}
	if err := checkValueText(buf.Bytes()); err != nil {
		return u, err
	}
	u.Value = json.RawMessage(buf.Bytes())
	if u.MsgID == "" {
		u.MsgID = NewMsgID()
	}
	return u, nil
}

// NormalizeCompact is Normalize for an update whose value the caller has
// already checked and compacted as json.Compact does, e.g. while parsing it
// out of a request body. It checks the id, the msg id and the text of the
// value's strings as Normalize does, with the same errors, and makes a msg
// id if there is none; the value is not copied, so u.Value is shared with
// the result. A value that is not valid, compact JSON breaks the contract
// and is kept as given.
func NormalizeCompact(u Update) (Update, error) {
	if err := checkFields(u); err != nil {
		return u, err
	}
	if len(u.Value) == 0 { // a tombstone (checkFields)
		u.Value = tombstoneValue
	}
	if err := checkValueText(u.Value); err != nil {
		return u, err
	}
	if u.MsgID == "" {
		u.MsgID = NewMsgID()
	}
	return u, nil
}

// ValidateAppend checks the arguments of Queue.Append as every engine
// does before it writes: a valid topic, and updates that are normalized:
// each with an id, a msg id and a value, the ids valid text within their
// limits. Errors name the update as the HTTP API does ("items[3].msg_id").
// It does not scan values: valid, compact JSON is Append's precondition.
func ValidateAppend(topic string, updates []Update) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	for i, u := range updates {
		err := checkFields(u)
		if err == nil && u.MsgID == "" {
			err = Invalidf("msg_id", "missing (normalize the update first)")
		}
		if err == nil && len(u.Value) == 0 {
			err = Invalidf("value", "missing (normalize the update first)")
		}
		if err != nil {
			ie := err.(*InvalidError)
			return &InvalidError{Field: itemField(i, ie.Field), Reason: ie.Reason}
		}
	}
	return nil
}

// Validate checks a commit's shape as every engine does before it reads
// the store: a valid topic, a holder, a time, items whose seqs follow
// PrevSeq one by one, and a checkpoint, if any, made under the commit's
// lease, of a size within the commit. What needs the store (the lease, the
// cursor, the items being in the queue with these hashes) the engine checks
// in the same atomic step as the write.
func (c Commit) Validate() error {
	if err := ValidTopic(c.Topic); err != nil {
		return err
	}
	if c.Holder == "" {
		return Invalidf("holder", "must not be empty")
	}
	if c.At.IsZero() {
		return Invalidf("at", "must be set: it is the time of the commit's leaves")
	}
	if len(c.Items) == 0 {
		return Invalidf("items", "must not be empty")
	}
	for i, it := range c.Items {
		if want := c.PrevSeq + 1 + uint64(i); it.Seq != want {
			return Invalidf(fmt.Sprintf("items[%d].seq", i), "is %d, want %d (contiguous after prev seq %d)", it.Seq, want, c.PrevSeq)
		}
	}
	cp := c.Checkpoint
	if cp == nil {
		return nil
	}
	last := c.Items[len(c.Items)-1].Seq
	switch {
	case cp.Topic != c.Topic || cp.Epoch != c.Epoch || cp.Node != c.Holder:
		return Invalidf("checkpoint", "not made under the commit's lease")
	case cp.Size == 0 || cp.Size > last:
		return Invalidf("checkpoint", "size %d is not in [1, %d]", cp.Size, last)
	case len(cp.Note) == 0:
		return Invalidf("checkpoint", "no note")
	}
	return nil
}

// ValidateNodeLease checks the arguments of Locks.AcquireNode and
// Locks.RenewNode as every engine does: a node and a positive ttl.
func ValidateNodeLease(node string, ttl time.Duration) error {
	if err := ValidateLeave(node); err != nil {
		return err
	}
	return validTTL(ttl)
}

// ValidateNodeRelease checks the arguments of Locks.ReleaseNode: a node, an
// epoch, and a reason of released or failed, or crashed: another node
// ending it because its process was found gone (node/peers.go).
func ValidateNodeRelease(nl NodeLease, reason ReleaseReason) error {
	if reason != ReasonCrashed {
		if err := validReason(reason); err != nil {
			return Invalidf("reason", "must be %q, %q or %q, got %q", ReasonReleased, ReasonFailed, ReasonCrashed, reason)
		}
	}
	if err := ValidateLeave(nl.Node); err != nil {
		return err
	}
	if nl.Epoch == 0 {
		return Invalidf("epoch", "must be positive")
	}
	return nil
}

// ValidateLease checks the arguments of Locks.Acquire as every engine does:
// a valid topic and a node lease (a node and an epoch).
func ValidateLease(topic string, nl NodeLease) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	if nl.Node == "" {
		return Invalidf("holder", "must not be empty")
	}
	if nl.Epoch == 0 {
		return Invalidf("epoch", "must be positive")
	}
	return nil
}

// ValidateRelease checks the arguments of Locks.Release: a valid topic, a
// holder, and a reason of released or failed (an expiry is the store's to
// record, never a caller's).
func ValidateRelease(l Lease, reason ReleaseReason) error {
	if err := validReason(reason); err != nil {
		return err
	}
	if err := ValidTopic(l.Topic); err != nil {
		return err
	}
	if l.Holder == "" {
		return Invalidf("holder", "must not be empty")
	}
	return nil
}

func validReason(reason ReleaseReason) error {
	if reason != ReasonReleased && reason != ReasonFailed {
		return Invalidf("reason", "must be %q or %q, got %q", ReasonReleased, ReasonFailed, reason)
	}
	return nil
}

// ValidateHeartbeat checks the arguments of Members.Heartbeat: a node and a
// positive ttl. ValidateLeave checks Members.Leave's node.
func ValidateHeartbeat(m Member, ttl time.Duration) error {
	if err := ValidateLeave(m.Node); err != nil {
		return err
	}
	return validTTL(ttl)
}

// ValidateLeave: see ValidateHeartbeat.
func ValidateLeave(node string) error {
	if node == "" {
		return Invalidf("node", "must not be empty")
	}
	return nil
}

// ValidateCheckpoint checks the argument of Checkpoints.AddCheckpoint
// before the store is read: a valid topic, a node, a note and a size.
func ValidateCheckpoint(cp Checkpoint) error {
	if err := ValidTopic(cp.Topic); err != nil {
		return err
	}
	if cp.Node == "" || len(cp.Note) == 0 || cp.Size == 0 {
		return Invalidf("checkpoint", "node, note and size are required")
	}
	return nil
}

// ValidateCosign checks the arguments of Checkpoints.Cosign: a valid topic,
// and a cosignature with a node and a signature.
func ValidateCosign(topic string, cs Cosignature) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	if cs.Node == "" || len(cs.Signature) == 0 {
		return Invalidf("cosignature", "node and signature are required")
	}
	return nil
}

// ValidateRead checks the arguments of a paged read (Items, Published,
// Leaves, Handovers, Checkpoints): a valid topic and a positive limit. An
// engine may return fewer than limit.
func ValidateRead(topic string, limit int) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	if limit <= 0 {
		return Invalidf("limit", "must be positive, got %d", limit)
	}
	return nil
}

// ValidateSnapshot checks the arguments of Snapshots.Snapshot: those of a
// paged read, and an afterID within the id limit (any other string is a
// position between ids, so it is not checked as text).
func ValidateSnapshot(topic, afterID string, limit int) error {
	if err := ValidateRead(topic, limit); err != nil {
		return err
	}
	if len(afterID) > MaxIDLen {
		return Invalidf("after_id", "longer than %d bytes", MaxIDLen)
	}
	return nil
}

func validTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return Invalidf("ttl", "must be positive, got %v", ttl)
	}
	return nil
}

// ValidateDelete checks the arguments of Lifecycle.DeleteTopic.
func ValidateDelete(topic string) error { return ValidTopic(topic) }

// ValidateRetention checks the arguments of Lifecycle.SetRetention: each
// field is 0 (the default), Unlimited, or within its bounds (1 to
// MaxRetainItems items; MinRetainAge to MaxRetainAge, in whole
// milliseconds).
func ValidateRetention(topic string, r Retention) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	if r.Items != 0 && r.Items != Unlimited && (r.Items < 0 || r.Items > MaxRetainItems) {
		return Invalidf("items", "%d is out of range (1 to %d, 0 for the default, -1 for no limit)", r.Items, int64(MaxRetainItems))
	}
	if r.Age != 0 && r.Age != Unlimited {
		if r.Age < MinRetainAge || r.Age > MaxRetainAge {
			return Invalidf("age", "%v is out of range (%v to %v, 0 for the default, \"none\" for no limit)", r.Age, MinRetainAge, MaxRetainAge)
		}
		if r.Age%time.Millisecond != 0 {
			return Invalidf("age", "%v is not a whole number of milliseconds", r.Age)
		}
	}
	return nil
}
