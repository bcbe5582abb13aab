package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

func TestDecodeUpdates(t *testing.T) {
	ups, single, err := decodeUpdates([]byte(` {"value": [1, 2 ,3], "id": "a", "msg_id": "m"} `), 10)
	if err != nil || !single || len(ups) != 1 {
		t.Fatalf("%v %v %v", ups, single, err)
	}
	if u := ups[0]; u.ID != "a" || u.MsgID != "m" || string(u.Value) != "[1,2,3]" {
		t.Fatalf("update %+v (value %s)", u, u.Value)
	}
	ups, single, err = decodeUpdates([]byte(`[{"id":"a","value":null,"msg_id":null},{"id":"b","value":"\u00e9"}]`), 2)
	if err != nil || single || len(ups) != 2 {
		t.Fatalf("%v %v %v", ups, single, err)
	}
	if string(ups[0].Value) != "null" || ups[0].MsgID == "" || ups[1].MsgID == "" || ups[0].MsgID == ups[1].MsgID {
		t.Fatalf("updates %+v", ups)
	}
	_, _, err = decodeUpdates([]byte(`[{"id":"a","value":1},{"id":"b","value":1},{"id":"c","value":1}]`), 2)
	var e *wire.Error
	if !errors.As(err, &e) || e.Code != baton.CodeTooLarge {
		t.Fatalf("over MaxBatch: %v", err)
	}
}

// FuzzDecodeUpdates checks that the body parser never panics, and that
// whatever it accepts is a valid, normalized batch that reads back the same.
func FuzzDecodeUpdates(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","value":1}`,
		`{"id":"a","value":{"x":[1,2,{"y":null}]},"msg_id":"m"}`,
		`[{"id":"a","value":1},{"id":"b","value":"s","msg_id":"m2"}]`,
		`{"id":"a","deleted":true}`, `{"id":"a","deleted":true,"value":{"x":1}}`, `{"id":"a","value":1,"deleted":false}`,
		`{"id":"a","deleted":null}`, `{"id":"a","deleted":"true"}`, `{"id":"a","deleted":1}`, `{"id":"a","deleted":[]}`,
		`{"id":"a","deleted":{}}`, `{"id":"a","deleted":tru}`, `{"id":"a","deleted":true,"deleted":true}`,
		`[{"id":"a","deleted":true},{"id":"b","value":2}]`, `{"id":"a","deleted":"\ud800"}`,
		`[]`, `{}`, `[{}]`, `null`, `"x"`, `{"id":"a"}`, `{"value":1}`,
		`{"id":"a","value":1,"x":2}`, `{"id":"a","id":"a","value":1}`,
		`{"id":"a","value":1} {}`, `[{"id":"a","value":1}]]`, `{"id":"a","value":1`,
		`{"id":"\u0000","value":1}`, `{"id":"a","value":1e999}`, `[[]]`, "\ufeff{}",
		`{"id":"a","value":"\ud800"}`, `  [ {"id" : "a" , "value" : true } ]  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const maxBatch = 8
		ups, single, err := decodeUpdates(body, maxBatch)
		if err != nil {
			var ie *baton.InvalidError
			var e *wire.Error
			if !errors.As(err, &ie) && !(errors.As(err, &e) && e.Code == baton.CodeTooLarge) {
				t.Fatalf("error of unexpected kind %T: %v", err, err)
			}
			if ups != nil {
				t.Fatal("updates returned with an error")
			}
			return
		}
		if len(ups) == 0 || len(ups) > maxBatch || single && len(ups) != 1 {
			t.Fatalf("%d updates (single %v)", len(ups), single)
		}
		for _, u := range ups {
			n, err := baton.Normalize(u)
			if err != nil {
				t.Fatalf("accepted update fails Normalize: %v", err)
			}
			if n.ID != u.ID || n.MsgID != u.MsgID || string(n.Value) != string(u.Value) {
				t.Fatalf("accepted update not normalized: %+v", u)
			}
		}
		// What was accepted reads back the same.
		var again []byte
		if single {
			again, err = json.Marshal(ups[0])
		} else {
			again, err = json.Marshal(ups)
		}
		if err != nil {
			t.Fatal(err)
		}
		ups2, single2, err := decodeUpdates(again, maxBatch)
		if err != nil || single2 != single || len(ups2) != len(ups) {
			t.Fatalf("re-encoded body %s: %v", again, err)
		}
		for i := range ups {
			if ups[i].ID != ups2[i].ID || ups[i].MsgID != ups2[i].MsgID || string(ups[i].Value) != string(ups2[i].Value) {
				t.Fatalf("round trip changed %+v to %+v", ups[i], ups2[i])
			}
		}
	})
}

// decodeCases are bodies that reach the corners of the decoder: they seed
// the fuzz tests and are checked against the reference decoder.
var decodeCases = []string{
	`{"id":"a","deleted":true}`, `{"id":"a","deleted":true,"value":{"x":1}}`, `{"id":"a","value":1,"deleted":false}`,
	`{"id":"a","deleted":null}`, `{"id":"a","deleted":"true"}`, `{"id":"a","deleted":1}`, `{"id":"a","deleted":[]}`,
	`{"id":"a","deleted":{}}`, `{"id":"a","deleted":tru}`, `{"id":"a","deleted":true,"deleted":true}`,
	`[{"id":"a","deleted":true},{"id":"b","value":2}]`, `{"id":"a","deleted":"\ud800"}`, `{"id":"a","deleted":1e999}`,
	`{"id":"a","value":1}`,
	`{"id":"a","value":{"x":[1,2,{"y":null}]},"msg_id":"m"}`,
	`[{"id":"a","value":1},{"id":"b","value":"s","msg_id":"m2"}]`,
	`[]`, `{}`, `[{}]`, `null`, `"x"`, `1`, `1e999`, `true`, ``, ` `, "\t\r\n ",
	`{"id":"a"}`, `{"value":1}`, `{"id":"","value":1}`, `{"id":null,"value":1}`,
	`{"id":"a","value":1,"x":2}`, `{"id":"a","id":"a","value":1}`,
	`{"id":"a","value":1,"value":2}`, `{"msg_id":null,"msg_id":"m","id":"a","value":1}`,
	`{"ID":"a","value":1}`, `{"Value":1,"id":"a"}`, `{"\u0069d":"a","value":1}`,
	`{"id\u0000":"a"}`, `{"\ud800":1}`, "{\"\xff\":1}", "{\"id\xff\":1}",
	`{"id":"a","value":1} {}`, `[{"id":"a","value":1}]]`, `{"id":"a","value":1`,
	`{"id":"a","value":1}}`, `[{"id":"a","value":1}}`, `{"id":"a","value":1]`,
	`{"id":"a","value":1} x`, `[] x`, `[]]`, `[,]`, `[{"id":"a","value":1},]`,
	`[{"id":"a","value":1}:`, `[{"id":"a","value":1} {"id":"b","value":1}]`,
	`{"id":"a",}`, `{,}`, `{"id" "a"}`, `{"x" "a"}`, `{"id":"a" "value":1}`,
	`{"id"::"a"}`, `{"id":,"value":1}`, `{"id":}`, `{"value":}`, `{"value"}`,
	`{"id":"\u0000","value":1}`, `{"id":"a\u007f","value":1}`, "{\"id\":\"a\x7f\",\"value\":1}",
	`{"id":"a","value":1e999}`, `{"id":1e999,"value":1}`, `{"id":1,"value":1}`,
	`{"id":-0.5e-3,"value":1}`, `{"msg_id":1e-999,"id":"a","value":1}`,
	`{"id":"a","value":-}`, `{"id":"a","value":01}`, `{"id":"a","value":1.}`,
	`{"id":"a","value":1.5e}`, `{"id":"a","value":1.5e+}`, `{"id":"a","value":-0.0E-00}`,
	`{"id":"a","value":123456789012345678901234567890e123456789}`,
	`[[]]`, `[[{"id":"a"}]]`, `[1]`, `[1e999]`, `["x"]`, `[null]`, `[nul]`, `[tru`,
	`[true`, `[1`, `[01]`, `["\x"]`, `["\ud800"]`, `[{"id":"a","value":1},1]`,
	"\ufeff{}", `{"id":"a","value":"\ud800"}`, `{"id":"a","value":"\ud800\udc00"}`,
	`  [ {"id" : "a" , "value" : true } ]  `,
	"\n[\n\t{\r\n\"id\"\t:\n\"a\"\r,\n\"value\"\n:\n[ 1 , { \"k\" : [ ] , \"j\" : { } } , \"s p\" ]\r\n,\"msg_id\" : \"m\" }\n]\n",
	`{"id":"a","value":{"a b":" x y ","c":[ true , false , null ]}}`,
	`{"id":"\u00e9\ud83d\ude00","value":1,"msg_id":"\ud83d"}`,
	`{"id":"\ud800\u0041","value":1}`, `{"id":"\udc00\ud800","value":1}`,
	`{"id":"\/\b\f\n\r\t\"\\","value":1}`, `{"id":"a\q","value":1}`, `{"id":"\u12G4","value":1}`,
	"{\"id\":\"a\xff\xfeb\",\"value\":1}", "{\"id\":\"\xe2\x82\",\"value\":1}",
	"{\"id\":\"a\",\"value\":\"\xff\"}", "{\"id\":\"a\nb\",\"value\":1}",
	"{\"id\":\"a\",\"value\":\"\x00\"}", `{"id":"a","value":"\u"}`,
	`{"id":"` + strings.Repeat("x", 257) + `","value":1}`,
	`{"msg_id":"` + strings.Repeat("x", 129) + `","id":"a","value":1}`,
	`{"` + strings.Repeat("k", 100) + `":1}`, `{"` + strings.Repeat("é", 40) + `":1}`,
	`{"id":"a","value":{"a":1,}}`, `{"id":"a","value":[1,]}`, `{"id":"a","value":{"a"}}`,
	`{"id":"a","value":{1:2}}`, `{"id":"a","value":[1 2]}`, `{"id":"a","value":{"a":1 "b":2}}`,
	`{"id":"a","value":[}`, `{"id":"a","value":{]}`, `{"id":"a","value":tru}`, `{"id":"a","value":nulll}`,
	`{"id":{},"value":1}`, `{"id":[,"value":1}`, `{"msg_id":[],"id":"a","value":1}`,
	`{"msg_id":true,"id":"a","value":1}`, `{"msg_id":"","id":"a","value":1}`,
	`{"id":"a","value":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	`{"id":"a","value":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"id":"a","value":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat("}", 10001) + `}`,
	`{"id":"a","value":` + strings.Repeat("[", 20000),
	// Text that is not text: refused where encoding/json would read U+FFFD.
	"{\"id\":\"a\",\"value\":1,\"msg_id\":\"coll\xff\"}", "{\"id\":\"a\",\"value\":1,\"msg_id\":\"coll\xfe\"}",
	`{"id":"a","value":1,"msg_id":"\udc00"}`, `{"id":"\ud83d\u0041","value":1}`, `{"id":"\ud83d\ud83d\ude00","value":1}`,
	`{"id":"\ufffd\uFFFD","value":1}`, "{\"id\":\"\xef\xbf\xbd\",\"value\":1}", `{"id":"\\ufffd","value":1}`,
	"{\"id\":\"\\\\ufffd\xff\",\"value\":1}", "{\"id\":\"\xed\xa0\x80\",\"value\":1}",
	"{\"id\":\"a\xc2\x85\",\"value\":1}", `{"id":"a\u0085","value":1}`, `{"id":"a\u2028","value":1}`,
	`{"id":"a\u2029","value":1}`, `{"id":"a\u202e","value":1}`, `{"id":"a\u2066","value":1}`, `{"id":"a\u2069","value":1}`,
	`{"id":"a\u202f\u2065\u206a\u00a0","value":1}`,
	"{\"id\":\"a\",\"value\":{\"k\xff\":1}}", "{\"id\":\"a\",\"value\":[\"ok\",\"\xc3\"]}",
	`{"id":"a","value":"\udc00"}`, `{"id":"a","value":"\ud800x"}`, `{"id":"a","value":"\ud800\n"}`,
	`{"id":"a","value":"\ud800\u0041"}`, `{"id":"a","value":"\\ud800"}`, `{"id":"a","value":"\\\ud83d\ude00"}`,
	`{"id":"a","value":{"\ud800":1}}`, `{"id":"a","value":"\ud800\ud800\udc00"}`,
	`[{"id":"a","value":1},{"id":"b","value":"\udfff","msg_id":"\ud800"}]`,
	"[{\"id\":\"a\",\"value\":\"\xff\"},{\"id\":\"b\xff\",\"value\":1}]",
}

// compareDecoders decodes body with decodeUpdates and the reference
// decoder, and fails unless they agree: both accept, with the same updates
// (msg ids made by the server aside), or both refuse, with errors of the
// same code naming the same field.
func compareDecoders(t *testing.T, body []byte, maxBatch int) {
	t.Helper()
	ups, single, err := decodeUpdates(body, maxBatch)
	want, wantSingle, wantErr := decodeUpdatesSlow(body, maxBatch)
	if err != nil || wantErr != nil {
		if errorKind(err) != errorKind(wantErr) {
			t.Fatalf("body %q: error %q, reference error %q", clip(string(body), 200), err, wantErr)
		}
		if ups != nil {
			t.Fatal("updates returned with an error")
		}
		return
	}
	if single != wantSingle || len(ups) != len(want) {
		t.Fatalf("body %q: %d updates (single %v), reference %d (single %v)", body, len(ups), single, len(want), wantSingle)
	}
	for i, u := range ups {
		w := want[i]
		if u.ID != w.ID || !bytes.Equal(u.Value, w.Value) || cap(u.Value) != len(u.Value) {
			t.Fatalf("body %q: update %d is %q %q, reference %q %q", body, i, u.ID, u.Value, w.ID, w.Value)
		}
		if u.Deleted != w.Deleted {
			t.Fatalf("body %q: update %d deleted %v, reference %v", body, i, u.Deleted, w.Deleted)
		}
		if u.MsgID != w.MsgID && !(madeMsgID(u.MsgID) && madeMsgID(w.MsgID)) {
			t.Fatalf("body %q: update %d msg id %q, reference %q", body, i, u.MsgID, w.MsgID)
		}
	}
}

// errorKind is what a client can branch on: the code and the field.
func errorKind(err error) string {
	var ie *baton.InvalidError
	var e *wire.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ie):
		return "invalid " + ie.Field
	case errors.As(err, &e):
		return e.Code
	}
	return fmt.Sprintf("unexpected %T", err)
}

func madeMsgID(s string) bool { return len(s) == 36 && strings.HasPrefix(s, "srv-") }

func TestDecodeUpdatesReference(t *testing.T) {
	for _, c := range decodeCases {
		for _, maxBatch := range []int{0, 1, 2, 100} {
			compareDecoders(t, []byte(c), maxBatch)
		}
	}
}

func TestDecodeUpdatesErrors(t *testing.T) {
	for body, want := range map[string]string{
		``:                                                     "invalid body",
		`{"id":"a","value":1,"Id":2}`:                          "invalid Id",
		`[{"id":"a","value":1},{"id":1}]`:                      "invalid items[1].id",
		`[{"id":"a","value":1},{"value":1}]`:                   "invalid items[1].id",
		`[{"id":"a","value":1},{"id":"b"}]`:                    "invalid items[1].value",
		`[{"id":"a","value":1},[]]`:                            "invalid items[1]",
		`[{"id":"a","value":1},{"value":1,"value":2}]`:         "invalid items[1].value",
		`{"\u0069d":"a","value":1,"id":"b"}`:                   "invalid id",
		`{"id":"a","value":[1,2}`:                              "invalid body",
		`[{"id":"a","value":1},{"id":"b","value":1},{"id":"c"`: baton.CodeTooLarge,
	} {
		if _, _, err := decodeUpdates([]byte(body), 2); errorKind(err) != want {
			t.Errorf("%s: %v, want %s", body, err, want)
		}
	}
	// A syntax error names the offset, and not more of the body than the
	// one byte at fault.
	_, _, err := decodeUpdates([]byte(`{"id":"secret-id","value":[1,2,secret]}`), 1)
	if msg := err.Error(); !strings.Contains(msg, "byte 31") || strings.Contains(msg, "secret") {
		t.Fatalf("error %q", msg)
	}
}

func TestDecodeUpdatesDepth(t *testing.T) {
	// Far deeper than the limit: refused, without exhausting the stack.
	deep := `{"id":"a","value":` + strings.Repeat(`[{"a":`, 1_000_000)
	_, _, err := decodeUpdates([]byte(deep), 1)
	if errorKind(err) != "invalid body" || !strings.Contains(err.Error(), "max depth") {
		t.Fatalf("deep value: %v", err)
	}
	ok := `{"id":"a","value":` + strings.Repeat("[", maxValueDepth) + strings.Repeat("]", maxValueDepth) + `}`
	if _, _, err := decodeUpdates([]byte(ok), 1); err != nil {
		t.Fatalf("value at the depth limit: %v", err)
	}
}

func TestDecodeUpdatesValuesApart(t *testing.T) {
	ups, _, err := decodeUpdates([]byte(`[{"id":"a","value":[ 1 ]},{"id":"b","value":{ "x" : 2 }}]`), 2)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(ups[0].Value, "junk"...)
	if string(ups[0].Value) != "[1]" || string(ups[1].Value) != `{"x":2}` {
		t.Fatalf("values %s %s", ups[0].Value, ups[1].Value)
	}
}

// FuzzDecodeDifferential checks decodeUpdates against the encoding/json
// Token API decoder it replaced, on any body and batch limit.
func FuzzDecodeDifferential(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c), uint8(2))
	}
	f.Add(benchBody(3, true, false), uint8(3))
	f.Add(benchBody(3, false, true), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, maxBatch uint8) {
		compareDecoders(t, body, int(maxBatch%8))
	})
}

// benchBody is a batch of n updates, each with a 128-byte JSON object value
// (indented if indent) and a msg id if msgID.
func benchBody(n int, msgID, indent bool) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		v := fmt.Sprintf(`{"user":"u-%06d","event":"page.view","ts":1700000000123,"tags":["a","bb"],"props":{"x":1.25,"y":-2e3,"ok":true,"note":"hi!!"}}`, i)
		if len(v) != 128 {
			panic(len(v))
		}
		if indent {
			var ib bytes.Buffer
			_ = json.Indent(&ib, []byte(v), "", "  ")
			v = ib.String()
		}
		fmt.Fprintf(&b, `{"id":"item-%06d","value":%s`, i, v)
		if msgID {
			fmt.Fprintf(&b, `,"msg_id":"msg-%06d"`, i)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes()
}

// BenchmarkDecodeUpdates compares decodeUpdates with the reference decoder
// on a batch of 100 updates with 128-byte object values.
func BenchmarkDecodeUpdates(b *testing.B) {
	for _, body := range []struct {
		name          string
		msgID, indent bool
	}{
		{"compact", true, false},
		{"indented", true, true},
		{"no-msg-id", false, false},
	} {
		data := benchBody(100, body.msgID, body.indent)
		for _, dec := range []struct {
			name string
			fn   func([]byte, int) ([]baton.Update, bool, error)
		}{
			{"reference", decodeUpdatesSlow},
			{"fast", decodeUpdates},
		} {
			b.Run(body.name+"/"+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := dec.fn(data, 100); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// decodeUpdatesSlow is the decoder decodeUpdates replaced, built on the
// encoding/json Token API, kept as the reference of the differential tests.
func decodeUpdatesSlow(body []byte, maxBatch int) (ups []baton.Update, single bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, false, baton.Invalidf("body", "empty: want a JSON object or an array of objects")
	}
	if err != nil {
		return nil, false, slowSyntaxError(err)
	}
	var prefixes []string
	switch tok {
	case json.Delim('{'):
		u, err := slowDecodeUpdate(dec, body, "")
		if err != nil {
			return nil, false, err
		}
		ups, single, prefixes = []baton.Update{u}, true, []string{""}
	case json.Delim('['):
		for dec.More() {
			i := len(ups)
			if i >= maxBatch {
				return nil, false, wire.Errorf(baton.CodeTooLarge, "batch larger than %d items", maxBatch)
			}
			prefix := fmt.Sprintf("items[%d]", i)
			tok, err := dec.Token()
			if err != nil {
				return nil, false, slowSyntaxError(err)
			}
			if tok != json.Delim('{') {
				return nil, false, baton.Invalidf(prefix, "must be a JSON object")
			}
			u, err := slowDecodeUpdate(dec, body, prefix+".")
			if err != nil {
				return nil, false, err
			}
			ups = append(ups, u)
			prefixes = append(prefixes, prefix+".")
		}
		if _, err := dec.Token(); err != nil { // the closing ]
			return nil, false, slowSyntaxError(err)
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

func slowDecodeUpdate(dec *json.Decoder, body []byte, prefix string) (baton.Update, error) {
	var (
		u                         baton.Update
		hasID, hasV, hasMsg, hasD bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return u, slowSyntaxError(err)
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
		case "deleted":
			seen = &hasD
		default:
			return u, baton.Invalidf(field, "unknown field (want id, value, msg_id, deleted)")
		}
		if *seen {
			return u, baton.Invalidf(field, "repeated")
		}
		*seen = true
		switch key {
		case "id":
			s, err := slowDecodeString(dec, body, field, false)
			if err != nil {
				return u, err
			}
			u.ID = s
		case "msg_id":
			s, err := slowDecodeString(dec, body, field, true)
			if err != nil {
				return u, err
			}
			u.MsgID = s
		case "value":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return u, slowSyntaxError(err)
			}
			u.Value = raw
		case "deleted":
			tok, err := dec.Token()
			if err != nil {
				return u, slowSyntaxError(err)
			}
			switch v := tok.(type) {
			case bool:
				u.Deleted = v
			case nil:
			default:
				return u, baton.Invalidf(field, "must be a boolean")
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return u, slowSyntaxError(err)
	}
	return u, nil
}

func slowDecodeString(dec *json.Decoder, body []byte, field string, nullOK bool) (string, error) {
	from := dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return "", slowSyntaxError(err)
	}
	switch v := tok.(type) {
	case string:
		raw := body[from:dec.InputOffset()]
		if hidesBadText(raw[bytes.IndexByte(raw, '"'):], v) {
			// Not text: an invalid string, for the id checks to refuse.
			return "\xff" + v, nil
		}
		return v, nil
	case nil:
		if nullOK {
			return "", nil
		}
	}
	return "", baton.Invalidf(field, "must be a string")
}

func slowSyntaxError(err error) error {
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

// hidesBadText reports whether encoding/json read the quoted string raw as
// s by replacing invalid UTF-8 or an unpaired surrogate escape with U+FFFD:
// s then has more U+FFFD than raw asks for, literally or as an escape.
func hidesBadText(raw []byte, s string) bool {
	asked := bytes.Count(raw, []byte("\ufffd"))
	for i := 0; i < len(raw)-1; i++ {
		if raw[i] == '\\' {
			if i+6 <= len(raw) && strings.EqualFold(string(raw[i+1:i+6]), "ufffd") {
				asked++
			}
			i++ // the escaped character
		}
	}
	return strings.Count(s, "\ufffd") > asked
}

// Text that is not text is refused naming the field, never read as U+FFFD:
// msg ids "coll\xff" and "coll\xfe" would otherwise be one, and the second
// update dropped as its duplicate.
func TestDecodeUpdatesText(t *testing.T) {
	for body, want := range map[string]string{
		"[{\"id\":\"a\",\"value\":1,\"msg_id\":\"coll\xff\"}]":                            "invalid items[0].msg_id",
		"[{\"id\":\"a\",\"value\":1},{\"id\":\"a\",\"value\":1,\"msg_id\":\"coll\xfe\"}]": "invalid items[1].msg_id",
		"{\"id\":\"coll\xff\",\"value\":1}":                                               "invalid id",
		`{"id":"a\ud800","value":1}`:                                                      "invalid id",
		`{"id":"a","value":1,"msg_id":"\udc00\ud800"}`:                                    "invalid msg_id",
		"{\"id\":\"a\xc2\x85\",\"value\":1}":                                              "invalid id",
		`{"id":"a\u009f","value":1}`:                                                      "invalid id",
		`{"id":"a\u2028","value":1}`:                                                      "invalid id",
		`{"id":"a\u2029","value":1}`:                                                      "invalid id",
		`{"id":"a\u202a","value":1}`:                                                      "invalid id",
		`{"id":"a\u202e","value":1}`:                                                      "invalid id",
		`{"id":"a\u2066","value":1}`:                                                      "invalid id",
		`{"id":"a","value":1,"msg_id":"\u2069"}`:                                          "invalid msg_id",
		"{\"id\":\"a\",\"value\":\"\xff\"}":                                               "invalid value",
		"[{\"id\":\"a\",\"value\":1},{\"id\":\"b\",\"value\":{\"k\xfe\":1}}]":             "invalid items[1].value",
		`{"id":"a","value":["\ud800"]}`:                                                   "invalid value",
		`{"id":"a","value":"\udc00\ud800"}`:                                               "invalid value",
		`{"id":"a","value":"x\ud83dy"}`:                                                   "invalid value",
		`{"id":"a\ufffd\u00a0\u202f\u2065","value":"\ud83d\ude00\\ud800"}`:                "ok",
		"{\"id\":\"\xef\xbf\xbd\",\"value\":1,\"msg_id\":\"\xe2\x80\xaf\"}":               "ok",
	} {
		if _, _, err := decodeUpdates([]byte(body), 2); errorKind(err) != want {
			t.Errorf("%q: %v, want %s", body, err, want)
		}
	}
}
