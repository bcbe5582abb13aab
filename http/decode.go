package http

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// maxValueDepth bounds the nesting of arrays and objects in a value, as
// encoding/json does, so that a hostile body cannot make the decoder hold an
// unbounded stack.
const maxValueDepth = 10000

// decodeUpdates parses a publish request body: one JSON object
// {"id", "value", "msg_id", "deleted"} or a non-empty array of them, and nothing after
// it. Keys match exactly (no case folding); unknown and repeated keys are
// refused. Every update is normalized (as by baton.Normalize), so the result
// is ready for Store.Append. single is true for a lone object. Errors name
// the field at fault: "id" for a lone object, "items[3].id" in a batch.
//
// The body is read in one pass, each value validated and compacted as it is
// scanned, with no reflection. What it accepts and yields, and the code and
// field of each error, are those of a decoder on the encoding/json Token API
// (decodeUpdatesSlow in decode_test.go); a differential fuzz test holds the
// two together.
func decodeUpdates(body []byte, maxBatch int) (ups []baton.Update, single bool, err error) {
	s := bodyScanner{buf: body}
	s.stack = s.stackBuf[:0]
	i := skipSpace(body, 0)
	if i == len(body) {
		return nil, false, baton.Invalidf("body", "empty: want a JSON object or an array of objects")
	}
	switch body[i] {
	case '{':
		s.pos = i + 1
		u, err := s.update(-1)
		if err != nil {
			return nil, false, err
		}
		ups, single = []baton.Update{u}, true
	case '[':
		s.pos = i + 1
		if ups, err = s.batch(maxBatch); err != nil {
			return nil, false, err
		}
	default:
		return nil, false, baton.Invalidf("body", "must be a JSON object or an array of objects")
	}
	if skipSpace(body, s.pos) != len(body) {
		return nil, false, baton.Invalidf("body", "unexpected data after the JSON value")
	}
	for i, u := range ups {
		n, err := baton.NormalizeCompact(u)
		if err != nil {
			if ie, ok := err.(*baton.InvalidError); ok && !single {
				return nil, false, &baton.InvalidError{Field: itemField(i, ie.Field), Reason: ie.Reason}
			}
			return nil, false, err
		}
		ups[i] = n
	}
	return ups, single, nil
}

// bodyScanner reads a publish body. Values are compacted into arena, one
// allocation shared by all the values of a body; each update's value is a
// slice of it capped at its own length, so an append to one cannot write
// over the next.
type bodyScanner struct {
	buf   []byte
	pos   int
	arena []byte
	// run is where the bytes of the value being scanned that are kept, but
	// not yet copied to arena, begin.
	run int
	// stack holds the open '[' and '{' of the value being scanned.
	stack    []byte
	stackBuf [32]byte
}

// batch reads the elements of an array whose '[' was consumed, and its
// closing ']'. The batch size is checked when another element is seen to
// follow, before it is read.
func (s *bodyScanner) batch(maxBatch int) ([]baton.Update, error) {
	var ups []baton.Update
	for n := 0; ; n++ {
		i := skipSpace(s.buf, s.pos)
		if i == len(s.buf) {
			return nil, s.syntaxError(i, "")
		}
		c := s.buf[i]
		if c == ']' || c == '}' {
			if c == '}' {
				return nil, s.syntaxError(i, "after array element")
			}
			s.pos = i + 1
			if n == 0 {
				return nil, baton.Invalidf("items", "empty batch")
			}
			return ups, nil
		}
		if n >= maxBatch {
			return nil, wire.Errorf(baton.CodeTooLarge, "batch larger than %d items", maxBatch)
		}
		i, c, err := s.next(i, n, "after array element")
		if err != nil {
			return nil, err
		}
		switch c {
		case '{':
			s.pos = i + 1
			u, err := s.update(n)
			if err != nil {
				return nil, err
			}
			ups = append(ups, u)
		case '[':
			return nil, baton.Invalidf("items["+strconv.Itoa(n)+"]", "must be a JSON object")
		default:
			// A scalar is read whole, and a number out of float64 range
			// refused, before it is found not to be an object, as
			// encoding/json's Token does.
			if _, err := s.scalar(i); err != nil {
				return nil, err
			}
			return nil, baton.Invalidf("items["+strconv.Itoa(n)+"]", "must be a JSON object")
		}
	}
}

// next finds element or member n of an array or object, whose previous
// one ended before i (c = s.buf[i], not a closer): at i for the first, else
// past the comma at i. ctx names the place in a syntax error.
func (s *bodyScanner) next(i, n int, ctx string) (int, byte, error) {
	if n == 0 {
		return i, s.buf[i], nil
	}
	if s.buf[i] != ',' {
		return i, 0, s.syntaxError(i, ctx)
	}
	if i = skipSpace(s.buf, i+1); i == len(s.buf) {
		return i, 0, s.syntaxError(i, "")
	}
	return i, s.buf[i], nil
}

// update reads the members of one object whose '{' was consumed, and its
// closing '}': batch element item, or the lone object if item < 0. Errors
// are found in the order encoding/json's Token finds them: a key is judged
// (unknown, repeated) before the colon after it is read.
func (s *bodyScanner) update(item int) (baton.Update, error) {
	var (
		u    baton.Update
		seen [numKeys]bool
	)
	for n := 0; ; n++ {
		i := skipSpace(s.buf, s.pos)
		if i == len(s.buf) {
			return u, s.syntaxError(i, "")
		}
		c := s.buf[i]
		if c == '}' || c == ']' {
			if c == ']' {
				return u, s.syntaxError(i, "after object key:value pair")
			}
			s.pos = i + 1
			return u, nil
		}
		i, c, err := s.next(i, n, "after object key:value pair")
		if err != nil {
			return u, err
		}
		if c != '"' {
			return u, s.syntaxError(i, "looking for beginning of object key string")
		}
		end, err := s.scanString(i)
		if err != nil {
			return u, err
		}
		key := keyOf(s.buf[i+1 : end-1])
		if key == keyUnknown {
			// The key may still be one of ours once unescaped.
			k, err := s.stringAt(i, end)
			if err != nil {
				return u, err
			}
			if key = keyOf([]byte(k)); key == keyUnknown {
				return u, baton.Invalidf(itemField(item, clip(k, 64)), "unknown field (want id, value, msg_id, deleted)")
			}
		}
		if seen[key] {
			return u, baton.Invalidf(itemField(item, keyNames[key]), "repeated")
		}
		seen[key] = true
		if i = skipSpace(s.buf, end); i == len(s.buf) {
			return u, s.syntaxError(i, "")
		}
		if s.buf[i] != ':' {
			return u, s.syntaxError(i, "after object key")
		}
		i = skipSpace(s.buf, i+1)
		switch key {
		case keyID:
			u.ID, err = s.stringValue(i, item, "id", false)
		case keyMsgID:
			u.MsgID, err = s.stringValue(i, item, "msg_id", true)
		case keyValue:
			u.Value, err = s.value(i)
		case keyDeleted:
			u.Deleted, err = s.boolValue(i, item)
		}
		if err != nil {
			return u, err
		}
	}
}

// The keys of an update object.
const (
	keyID = iota
	keyValue
	keyMsgID
	keyDeleted
	numKeys
	keyUnknown = -1
)

var keyNames = [numKeys]string{keyID: "id", keyValue: "value", keyMsgID: "msg_id", keyDeleted: "deleted"}

// keyOf matches an unquoted key exactly.
func keyOf(k []byte) int {
	switch string(k) {
	case "id":
		return keyID
	case "value":
		return keyValue
	case "msg_id":
		return keyMsgID
	case "deleted":
		return keyDeleted
	}
	return keyUnknown
}

// stringValue reads the value at i of the named member of update item,
// which must be a string, or null when nullOK (read as "").
func (s *bodyScanner) stringValue(i, item int, name string, nullOK bool) (string, error) {
	if i == len(s.buf) {
		return "", s.syntaxError(i, "")
	}
	switch s.buf[i] {
	case '"':
		end, err := s.scanString(i)
		if err != nil {
			return "", err
		}
		s.pos = end
		return s.textAt(i, end), nil
	case '{', '[':
		return "", baton.Invalidf(itemField(item, name), "must be a string")
	}
	null, err := s.scalar(i)
	if err != nil {
		return "", err
	}
	if null && nullOK {
		return "", nil
	}
	return "", baton.Invalidf(itemField(item, name), "must be a string")
}

// boolValue reads the "deleted" member's value at i of update item: true,
// false, or null (read as false).
func (s *bodyScanner) boolValue(i, item int) (bool, error) {
	if i < len(s.buf) && (s.buf[i] == '{' || s.buf[i] == '[') {
		return false, baton.Invalidf(itemField(item, "deleted"), "must be a boolean")
	}
	null, err := s.scalar(i)
	switch {
	case err != nil:
		return false, err
	case string(s.buf[i:s.pos]) == "true":
		return true, nil
	case null || string(s.buf[i:s.pos]) == "false":
		return false, nil
	}
	return false, baton.Invalidf(itemField(item, "deleted"), "must be a boolean")
}

// itemField names field of batch element item ("items[3].id"), or of the
// lone object if item < 0 ("id"). Names are made only for errors.
func itemField(item int, field string) string {
	if item < 0 {
		return field
	}
	return "items[" + strconv.Itoa(item) + "]." + field
}

// stringAt returns the string whose quotes are at buf[i] and buf[end-1],
// scanned already, unquoted exactly as encoding/json does (invalid UTF-8
// and lone surrogates read as U+FFFD). The common case, no escapes and valid
// UTF-8, is the bytes themselves; the rest is left to encoding/json.
func (s *bodyScanner) stringAt(i, end int) (string, error) {
	raw := s.buf[i+1 : end-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw), nil
	}
	var str string
	if err := json.Unmarshal(s.buf[i:end], &str); err != nil {
		return "", baton.Invalidf("body", "invalid JSON at byte %d: %v", i, err)
	}
	return str, nil
}

// textAt returns the string whose quotes are at buf[i] and buf[end-1],
// scanned already, unquoted without hiding what is not text: invalid UTF-8
// is kept as it is, and a \u escape of an unpaired surrogate becomes the
// surrogate's (invalid) 3-byte UTF-8 form, where encoding/json would read
// either as U+FFFD. The id and msg id checks (baton.ValidateAppend) then
// refuse them; read as U+FFFD, two different msg ids would be one.
func (s *bodyScanner) textAt(i, end int) string {
	raw := s.buf[i+1 : end-1]
	k := bytes.IndexByte(raw, '\\')
	if k < 0 {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	for k >= 0 {
		out = append(out, raw[:k]...)
		c := raw[k+1]
		raw = raw[k+2:]
		switch c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw)
			raw = raw[4:]
			if utf16.IsSurrogate(r) && len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
				if pair := utf16.DecodeRune(r, hex4(raw[2:])); pair != utf8.RuneError {
					r, raw = pair, raw[6:]
				}
			}
			if utf16.IsSurrogate(r) {
				// utf8.AppendRune would write U+FFFD.
				out = append(out, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
			} else {
				out = utf8.AppendRune(out, r)
			}
		default: // '"', '\\', '/'
			out = append(out, c)
		}
		k = bytes.IndexByte(raw, '\\')
	}
	return string(append(out, raw...))
}

// hex4 reads the 4 hex digits that scanString checked at the start of b
// (the slow path of textAt: ids with escapes).
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(n)
}

// scalar checks the string, number or literal at i as encoding/json's Token
// does: it must be complete, and a number must fit a float64. It sets s.pos
// after it and reports whether it is null.
func (s *bodyScanner) scalar(i int) (null bool, err error) {
	if i == len(s.buf) {
		return false, s.syntaxError(i, "")
	}
	var end int
	switch c := s.buf[i]; {
	case c == '"':
		end, err = s.scanString(i)
	case c == '-' || c >= '0' && c <= '9':
		if end, err = s.scanNumber(i); err == nil {
			if _, perr := strconv.ParseFloat(string(s.buf[i:end]), 64); perr != nil {
				return false, baton.Invalidf("body", "invalid JSON at byte %d: number out of range", i)
			}
		}
	case c == 't':
		end, err = s.scanLiteral(i, "true")
	case c == 'f':
		end, err = s.scanLiteral(i, "false")
	case c == 'n':
		end, err = s.scanLiteral(i, "null")
		null = true
	default:
		err = s.syntaxError(i, "looking for beginning of value")
	}
	if err != nil {
		return false, err
	}
	s.pos = end
	return null, nil
}

// value validates the JSON value at i (after optional white space) as
// json.Valid does, with encoding/json's depth limit, and returns it
// compacted as json.Compact does: white space outside strings removed,
// every other byte kept. It uses no recursion: s.stack holds the open
// arrays and objects.
func (s *bodyScanner) value(i int) ([]byte, error) {
	buf := s.buf
	if s.arena == nil {
		// Compacted values are never longer than the rest of the body.
		s.arena = make([]byte, 0, len(buf)-i)
	}
	start := len(s.arena)
	stack := s.stack[:0]
	var err error
	i = skipSpace(buf, i)
	s.run = i
	for {
		// A value begins at i.
		if i == len(buf) {
			return nil, s.syntaxError(i, "")
		}
		switch c := buf[i]; {
		case c == '{' || c == '[':
			if len(stack) == maxValueDepth {
				return nil, baton.Invalidf("body", "invalid JSON at byte %d: exceeded max depth %d", i, maxValueDepth)
			}
			stack = append(stack, c)
			if i = s.space(i + 1); i == len(buf) {
				return nil, s.syntaxError(i, "")
			}
			if c == '[' {
				if buf[i] != ']' {
					continue
				}
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if buf[i] == '}' {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if i, err = s.objectKey(i); err != nil {
				return nil, err
			}
			continue
		case c == '"':
			i, err = s.scanString(i)
		case c == '-' || c >= '0' && c <= '9':
			i, err = s.scanNumber(i)
		case c == 't':
			i, err = s.scanLiteral(i, "true")
		case c == 'f':
			i, err = s.scanLiteral(i, "false")
		case c == 'n':
			i, err = s.scanLiteral(i, "null")
		default:
			err = s.syntaxError(i, "looking for beginning of value")
		}
		if err != nil {
			return nil, err
		}
		// A value ended before i: close what it ends, up to the next value.
		for {
			if len(stack) == 0 {
				s.arena = append(s.arena, buf[s.run:i]...)
				s.stack, s.pos = stack, i
				n := len(s.arena)
				return s.arena[start:n:n], nil
			}
			if i = s.space(i); i == len(buf) {
				return nil, s.syntaxError(i, "")
			}
			c, open := buf[i], stack[len(stack)-1]
			if c == ',' {
				if i = s.space(i + 1); i == len(buf) {
					return nil, s.syntaxError(i, "")
				}
				if open == '{' {
					if i, err = s.objectKey(i); err != nil {
						return nil, err
					}
				}
				break
			}
			if open == '{' && c != '}' {
				return nil, s.syntaxError(i, "after object key:value pair")
			}
			if open == '[' && c != ']' {
				return nil, s.syntaxError(i, "after array element")
			}
			stack = stack[:len(stack)-1]
			i++
		}
	}
}

// objectKey reads, inside a value, a member's key string at i and the colon
// after it, up to the member's value.
func (s *bodyScanner) objectKey(i int) (int, error) {
	if s.buf[i] != '"' {
		return 0, s.syntaxError(i, "looking for beginning of object key string")
	}
	i, err := s.scanString(i)
	if err != nil {
		return 0, err
	}
	if i = s.space(i); i == len(s.buf) {
		return 0, s.syntaxError(i, "")
	}
	if s.buf[i] != ':' {
		return 0, s.syntaxError(i, "after object key")
	}
	return s.space(i + 1), nil
}

// space skips white space at i, if any, in a value: it copies to the arena
// the kept bytes buf[run:i] before it, and moves run past it. It returns
// the offset after the white space.
func (s *bodyScanner) space(i int) int {
	if i < len(s.buf) && s.buf[i] <= ' ' { // kept small to be inlined
		return s.skipSpaceCopy(i)
	}
	return i
}

func (s *bodyScanner) skipSpaceCopy(i int) int {
	if !isSpace(s.buf[i]) {
		return i
	}
	s.arena = append(s.arena, s.buf[s.run:i]...)
	s.run = skipSpace(s.buf, i+1)
	return s.run
}

// stringSafe marks the bytes that may appear unescaped in a JSON string
// without further checks. encoding/json does not check strings for valid
// UTF-8, so neither does the scanner.
var stringSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString checks the string whose opening quote is at i and returns the
// offset after its closing quote.
func (s *bodyScanner) scanString(i int) (int, error) {
	buf := s.buf
	for i++; ; {
		for i < len(buf) && stringSafe[buf[i]] {
			i++
		}
		if i == len(buf) {
			return 0, s.syntaxError(i, "")
		}
		switch buf[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i++
			if i == len(buf) {
				return 0, s.syntaxError(i, "")
			}
			switch buf[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i == len(buf) {
						return 0, s.syntaxError(i, "")
					}
					if !isHex(buf[i]) {
						return 0, s.syntaxError(i, "in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				return 0, s.syntaxError(i, "in string escape code")
			}
		default:
			return 0, s.syntaxError(i, "in string literal")
		}
	}
}

// scanNumber checks the number at i and returns the offset after it: the
// longest prefix that is a number, as encoding/json reads it.
func (s *bodyScanner) scanNumber(i int) (int, error) {
	buf := s.buf
	if buf[i] == '-' {
		i++
	}
	if i == len(buf) {
		return 0, s.syntaxError(i, "")
	}
	switch c := buf[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i = skipDigits(buf, i+1)
	default:
		return 0, s.syntaxError(i, "in numeric literal")
	}
	if i < len(buf) && buf[i] == '.' {
		if i++; i == len(buf) {
			return 0, s.syntaxError(i, "")
		}
		if !isDigit(buf[i]) {
			return 0, s.syntaxError(i, "after decimal point in numeric literal")
		}
		i = skipDigits(buf, i+1)
	}
	if i < len(buf) && (buf[i] == 'e' || buf[i] == 'E') {
		if i++; i < len(buf) && (buf[i] == '+' || buf[i] == '-') {
			i++
		}
		if i == len(buf) {
			return 0, s.syntaxError(i, "")
		}
		if !isDigit(buf[i]) {
			return 0, s.syntaxError(i, "in exponent of numeric literal")
		}
		i = skipDigits(buf, i+1)
	}
	return i, nil
}

// scanLiteral checks that lit is at i and returns the offset after it.
func (s *bodyScanner) scanLiteral(i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k == len(s.buf) {
			return 0, s.syntaxError(i+k, "")
		}
		if s.buf[i+k] != lit[k] {
			return 0, s.syntaxError(i+k, "in literal "+lit+" (expecting "+quoteChar(lit[k])+")")
		}
	}
	return i + len(lit), nil
}

// syntaxError describes invalid JSON at offset i without echoing the body
// beyond the one offending byte. i at the end of the body means the body
// ended too soon.
func (s *bodyScanner) syntaxError(i int, context string) error {
	if i >= len(s.buf) {
		return baton.Invalidf("body", "invalid JSON: unexpected end of input")
	}
	return baton.Invalidf("body", "invalid JSON at byte %d: invalid character %s %s", i, quoteChar(s.buf[i]), context)
}

// quoteChar formats c for an error message.
func quoteChar(c byte) string {
	if c > 0x20 && c < 0x7f && c != '\'' {
		return "'" + string(c) + "'"
	}
	return "0x" + strconv.FormatUint(uint64(c), 16)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
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
