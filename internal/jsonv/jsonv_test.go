package jsonv

import (
	"encoding/json"
	"strings"
	"testing"
)

var samples = []string{
	`{"px":1700.25,"qty":3}`, `[]`, `{}`, ` [ 1 , 2 ] `, `"a\u00e9\n"`, `-0.5e+10`, `0`, `1E5`, `true`, `null`, `false`,
	`{"a":[{"b":null}],"c":"d"}`, "\"\xff\xfe\"", `"\ud800"`, `[1,]`, `{"a":1,}`, `{"a"}`, `{,}`, `[,1]`, `01`, `1.`, `.5`,
	`-`, `1e`, `+1`, `"\x"`, "\"a\x01\"", `"\u12"`, `tru`, `nul`, `{"a":1}}`, `[1]]`, `[`, `{`, `"`, ``, ` `, `1 2`,
	`{"a" : 1 , "b" : [ true , false ] }`, "\t\n\r 7 \r\n", `[[[]]]`, `{"a":{"b":{}}}`, `{1:2}`, `["a":1]`, `{"a":1 "b":2}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	strings.Repeat("[", 10001) + "]",
}

// TestAgreesWithEncodingJSON: on valid and broken values alike, including
// the nesting limit, Valid answers as json.Valid does.
func TestAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range samples {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%.60q) = %v, json.Valid says %v", s, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range samples {
		if len(s) < 200 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	v := []byte(`{"px":1700.25,"qty":31,"venue":"XSHG","pad":"` + strings.Repeat("x", 80) + `"}`)
	b.Run("jsonv", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			Valid(v)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			json.Valid(v)
		}
	})
}
