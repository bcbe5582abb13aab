package http

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/baton-pub/baton"
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
	var e *Error
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
			var e *Error
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
