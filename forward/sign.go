package forward

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header carries a forwarded append's signature: "NODE DEADLINE SIG",
// where NODE is the forwarding node, DEADLINE the Unix millisecond after
// which the append must not be made (the forwarder has given up on it by
// then), and SIG the unpadded base64url HMAC-SHA256, under the key the
// nodes share, of the node, the deadline, the topic and the body.
const Header = "Baton-Forwarded"

// MaxAhead is how far in the receiver's future a deadline may be: a
// signature is good for that long at most. The nodes that forward share
// one machine and its clock (docs/design.md, "Appends forwarded to the
// lease holder").
const MaxAhead = 5 * time.Second

// KeySize is the size of the shared key.
const KeySize = 32

// Sign returns the Header value for a forwarded append of body to topic by
// node, to be made before deadline.
func Sign(key []byte, node, topic string, body []byte, deadline time.Time) string {
	ms := strconv.FormatInt(deadline.UnixMilli(), 10)
	return node + " " + ms + " " + base64.RawURLEncoding.EncodeToString(mac(key, node, ms, topic, body))
}

// Plausible checks the form and the deadline of a Header value h at now,
// with no key and no body: what a receiver can check before it reads a
// body. Verify checks all of it again.
func Plausible(h string, now time.Time) error {
	_, err := parse(h, now)
	return err
}

// header is a parsed Header value.
type header struct {
	node, ms, sig string
	deadline      time.Time
}

// parse splits a Header value and checks its deadline at now.
func parse(h string, now time.Time) (header, error) {
	var p header
	var rest string
	var ok1, ok2 bool
	p.node, rest, ok1 = strings.Cut(h, " ")
	p.ms, p.sig, ok2 = strings.Cut(rest, " ")
	if !ok1 || !ok2 || p.node == "" {
		return p, fmt.Errorf("%w: %s: want NODE DEADLINE SIG", ErrSignature, Header)
	}
	t, err := strconv.ParseInt(p.ms, 10, 64)
	if err != nil {
		return p, fmt.Errorf("%w: %s: bad deadline", ErrSignature, Header)
	}
	p.deadline = time.UnixMilli(t)
	switch d := p.deadline.Sub(now); {
	case d <= 0:
		return p, fmt.Errorf("%w: %s: its deadline passed %v ago", ErrSignature, Header, (-d).Round(time.Millisecond))
	case d > MaxAhead:
		return p, fmt.Errorf("%w: %s: its deadline is more than %v ahead", ErrSignature, Header, MaxAhead)
	}
	return p, nil
}

// Verify checks a Header value h for an append of body to topic at now,
// and returns the node that signed it and the deadline of the append. Its
// errors wrap ErrSignature, and say why without echoing the signature.
func Verify(key []byte, h, topic string, body []byte, now time.Time) (node string, deadline time.Time, err error) {
	p, err := parse(h, now)
	if err != nil {
		return "", time.Time{}, err
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(p.sig)
	if err != nil || !hmac.Equal(got, mac(key, p.node, p.ms, topic, body)) {
		return "", time.Time{}, fmt.Errorf("%w: %s: bad signature", ErrSignature, Header)
	}
	return p.node, p.deadline, nil
}

// mac is the HMAC of one forwarded append. Each part is length-prefixed,
// so that no two different requests sign the same bytes.
func mac(key []byte, node, ms, topic string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, part := range [][]byte{[]byte(node), []byte(ms), []byte(topic), body} {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		m.Write(part)
	}
	return m.Sum(nil)
}

// ErrSignature is Verify's error: the request is not a forwarded append
// signed by a node.
var ErrSignature = errors.New("not a forwarded append signed by a node")
