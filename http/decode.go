package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/baton-pub/baton"
)

// decodeUpdates parses a publish request body: one JSON object
// {"id", "value", "msg_id"} or a non-empty array of them, and nothing after
// it. Keys match exactly (no case folding); unknown and repeated keys are
// refused. Every update is normalized (baton.Normalize), so the result is
// ready for Store.Append. single is true for a lone object. Errors name the
// field at fault: "id" for a lone object, "items[3].id" in a batch.
func decodeUpdates(body []byte, maxBatch int) (ups []baton.Update, single bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, false, baton.Invalidf("body", "empty: want a JSON object or an array of objects")
	}
	if err != nil {
		return nil, false, syntaxError(err)
	}
	var prefixes []string
	switch tok {
	case json.Delim('{'):
		u, err := decodeUpdate(dec, "")
		if err != nil {
			return nil, false, err
		}
		ups, single, prefixes = []baton.Update{u}, true, []string{""}
	case json.Delim('['):
		for dec.More() {
			i := len(ups)
			if i >= maxBatch {
				return nil, false, Errorf(baton.CodeTooLarge, "batch larger than %d items", maxBatch)
			}
			prefix := fmt.Sprintf("items[%d]", i)
			tok, err := dec.Token()
			if err != nil {
				return nil, false, syntaxError(err)
			}
			if tok != json.Delim('{') {
				return nil, false, baton.Invalidf(prefix, "must be a JSON object")
			}
			u, err := decodeUpdate(dec, prefix+".")
			if err != nil {
				return nil, false, err
			}
			ups = append(ups, u)
			prefixes = append(prefixes, prefix+".")
		}
		if _, err := dec.Token(); err != nil { // the closing ]
			return nil, false, syntaxError(err)
		}
		if len(ups) == 0 {
			return nil, false, baton.Invalidf("items", "empty batch")
		}
	default:
		return nil, false, baton.Invalidf("body", "must be a JSON object or an array of objects")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, baton.Invalidf("body", "unexpected data after the JSON value")
	}
	for i, u := range ups {
		n, err := baton.Normalize(u)
		if err != nil {
			var ie *baton.InvalidError
			if errors.As(err, &ie) {
				return nil, false, &baton.InvalidError{Field: prefixes[i] + ie.Field, Reason: ie.Reason}
			}
			return nil, false, err
		}
		ups[i] = n
	}
	return ups, single, nil
}

// decodeUpdate reads the members of one object whose '{' was consumed, and
// its closing '}'.
func decodeUpdate(dec *json.Decoder, prefix string) (baton.Update, error) {
	var (
		u                   baton.Update
		hasID, hasV, hasMsg bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return u, syntaxError(err)
		}
		key, _ := tok.(string) // the decoder only yields strings as keys
		field := prefix + clip(key, 64)
		var seen *bool
		switch key {
		case "id":
			seen = &hasID
		case "value":
			seen = &hasV
		case "msg_id":
			seen = &hasMsg
		default:
			return u, baton.Invalidf(field, "unknown field (want id, value, msg_id)")
		}
		if *seen {
			return u, baton.Invalidf(field, "repeated")
		}
		*seen = true
		switch key {
		case "id":
			s, err := decodeString(dec, field, false)
			if err != nil {
				return u, err
			}
			u.ID = s
		case "msg_id":
			s, err := decodeString(dec, field, true)
			if err != nil {
				return u, err
			}
			u.MsgID = s
		case "value":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return u, syntaxError(err)
			}
			u.Value = raw
		}
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return u, syntaxError(err)
	}
	return u, nil
}

// decodeString reads a string value; null reads as "" when nullOK.
func decodeString(dec *json.Decoder, field string, nullOK bool) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", syntaxError(err)
	}
	switch v := tok.(type) {
	case string:
		return v, nil
	case nil:
		if nullOK {
			return "", nil
		}
	}
	return "", baton.Invalidf(field, "must be a string")
}

// syntaxError describes a JSON error without echoing the body.
func syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return baton.Invalidf("body", "invalid JSON at byte %d: %v", se.Offset, se)
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return baton.Invalidf("body", "invalid JSON: unexpected end of input")
	default:
		return baton.Invalidf("body", "invalid JSON: %v", err)
	}
}

// clip shortens s to at most n bytes (on a rune boundary) for messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
