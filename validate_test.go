package baton_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
)

// NormalizeCompact agrees with Normalize on updates whose value is valid,
// compact JSON.
func TestNormalizeCompact(t *testing.T) {
	for _, u := range []baton.Update{
		{ID: "a", Value: json.RawMessage(`1`)},
		{ID: "a", Value: json.RawMessage(`{"x":[1,"y"]}`), MsgID: "m"},
		{ID: "", Value: json.RawMessage(`1`)},
		{ID: "a\x00", Value: json.RawMessage(`1`)},
		{ID: "a\x7f", Value: json.RawMessage(`1`)},
		{ID: "\xff", Value: json.RawMessage(`1`)},
		{ID: strings.Repeat("x", baton.MaxIDLen+1), Value: json.RawMessage(`1`)},
		{ID: "a", Value: json.RawMessage(`1`), MsgID: strings.Repeat("x", baton.MaxMsgIDLen+1)},
		{ID: "a", Value: json.RawMessage(`1`), MsgID: "m\n"},
		{ID: "a"},
	} {
		got, err := baton.NormalizeCompact(u)
		want, wantErr := baton.Normalize(u)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("%+v: error %v, Normalize %v", u, err, wantErr)
		}
		if err != nil {
			continue
		}
		if got.ID != want.ID || !bytes.Equal(got.Value, want.Value) || (u.MsgID != "" && got.MsgID != u.MsgID) || got.MsgID == "" {
			t.Fatalf("%+v: got %+v, Normalize %+v", u, got, want)
		}
	}
}
