package wire

import (
	"encoding/json"
	"testing"

	"github.com/baton-pub/baton"
)

// TestShapes pins the JSON of the bodies docs/api.md shows.
func TestShapes(t *testing.T) {
	r := baton.Receipt{Seq: 42, Hash: baton.Hash{0x9f}, MsgID: "m"}
	for _, c := range []struct {
		v    any
		want string
	}{
		{PublishResponse{Items: []baton.Receipt{r}},
			`{"items":[{"seq":42,"hash":"9f00000000000000000000000000000000000000000000000000000000000000","msg_id":"m","duplicate":false}]}`},
		{PublishResponse{Receipt: &r, Items: []baton.Receipt{r}},
			`{"seq":42,"hash":"9f00000000000000000000000000000000000000000000000000000000000000","msg_id":"m","duplicate":false,"items":[{"seq":42,"hash":"9f00000000000000000000000000000000000000000000000000000000000000","msg_id":"m","duplicate":false}]}`},
		{ErrorResponse{Error: &Error{Status: 400, Code: baton.CodeInvalid, Message: "items[3].id: missing", Field: "items[3].id"}},
			`{"error":{"code":"invalid","message":"items[3].id: missing","field":"items[3].id"}}`},
		{ErrorResponse{Error: &Error{Code: baton.CodeGone, Message: "trimmed", Earliest: 6}},
			`{"error":{"code":"gone","message":"trimmed","earliest":6}}`},
		{Reset{Earliest: 6}, `{"earliest":6}`},
		{ItemOf(baton.Published{Item: baton.Item{Topic: "t", Seq: 3, ID: "a", Value: json.RawMessage(`{"x":1}`), MsgID: "m"}, Epoch: 2, Publisher: "n1"}),
			`{"seq":3,"id":"a","value":{"x":1},"hash":"0000000000000000000000000000000000000000000000000000000000000000","epoch":2,"publisher":"n1","msg_id":"m"}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%T:\n got %s (%v)\nwant %s", c.v, b, err, c.want)
		}
	}
}

func TestError(t *testing.T) {
	for _, c := range []struct {
		e         Error
		text      string
		temporary bool
	}{
		{Error{Code: "invalid", Message: "bad"}, "invalid: bad", false},
		{Error{Status: 400, Code: "invalid", Message: "bad"}, "400 invalid: bad", false},
		{Error{Status: 409, Code: "conflict", Message: "moved"}, "409 conflict: moved", false},
		{Error{Status: 429, Code: "unavailable", Message: "later"}, "429 unavailable: later", true},
		{Error{Status: 503, Code: "unavailable", Message: "store unavailable"}, "503 unavailable: store unavailable", true},
	} {
		if got := c.e.Error(); got != c.text {
			t.Errorf("Error() = %q, want %q", got, c.text)
		}
		if got := c.e.Temporary(); got != c.temporary {
			t.Errorf("%s: Temporary() = %v", c.text, got)
		}
	}
}
