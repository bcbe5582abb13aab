package forward

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{7}, KeySize)

func TestSignVerify(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	body := []byte(`[{"id":"k","value":1,"msg_id":"m"}]`)
	h := Sign(testKey, "n1", "orders", body, now.Add(time.Second))
	node, deadline, err := Verify(testKey, h, "orders", body, now)
	if err != nil || node != "n1" || !deadline.Equal(now.Add(time.Second)) {
		t.Fatalf("Verify of a good signature: %q %v %v", node, deadline, err)
	}
	other := bytes.Repeat([]byte{8}, KeySize)
	for _, tc := range []struct {
		what        string
		key         []byte
		h, topic    string
		body        []byte
		now         time.Time
		wantInError string
	}{
		{"another key", other, h, "orders", body, now, "bad signature"},
		{"another topic", testKey, h, "orders2", body, now, "bad signature"},
		{"another body", testKey, h, "orders", []byte(`[{"id":"k","value":2,"msg_id":"m"}]`), now, "bad signature"},
		{"another node", testKey, strings.Replace(h, "n1 ", "n2 ", 1), "orders", body, now, "bad signature"},
		{"a deadline moved", testKey, strings.Replace(h, "1700000001000", "1700000001500", 1), "orders", body, now, "bad signature"},
		{"past its deadline", testKey, h, "orders", body, now.Add(time.Second), "deadline passed"},
		{"a deadline too far ahead", testKey, Sign(testKey, "n1", "orders", body, now.Add(MaxAhead+time.Millisecond)), "orders", body, now, "ahead"},
		{"empty", testKey, "", "orders", body, now, "want NODE DEADLINE SIG"},
		{"no signature", testKey, "n1 1700000001000", "orders", body, now, "want NODE DEADLINE SIG"},
		{"a bad deadline", testKey, "n1 soon sig", "orders", body, now, "bad deadline"},
		{"a signature not in base64url", testKey, "n1 1700000001000 !!!", "orders", body, now, "bad signature"},
	} {
		_, _, err := Verify(tc.key, tc.h, tc.topic, tc.body, tc.now)
		if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tc.wantInError) {
			t.Errorf("%s: %v, want ErrSignature saying %q", tc.what, err, tc.wantInError)
		}
	}
}

// TestMacFramesItsParts: moving bytes from the topic to the body (or the
// node to the deadline) changes what is signed.
func TestMacFramesItsParts(t *testing.T) {
	a := mac(testKey, "n1", "1", "ab", []byte("c"))
	b := mac(testKey, "n1", "1", "a", []byte("bc"))
	if bytes.Equal(a, b) {
		t.Fatal("topic ab body c and topic a body bc sign the same bytes")
	}
}

// FuzzVerify: Verify never panics, and accepts only what Sign makes.
func FuzzVerify(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	body := []byte(`[{"id":"k","value":1,"msg_id":"m"}]`)
	f.Add(Sign(testKey, "n1", "orders", body, now.Add(time.Second)), "orders", body)
	f.Add("n1 1700000001000 x", "t", []byte("{}"))
	f.Add("  ", "", []byte(nil))
	f.Fuzz(func(t *testing.T, h, topic string, body []byte) {
		node, deadline, err := Verify(testKey, h, topic, body, now)
		if err != nil {
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("error %v is not ErrSignature", err)
			}
			return
		}
		if Sign(testKey, node, topic, body, deadline) != h {
			t.Fatalf("accepted %q, which Sign does not make", h)
		}
	})
}
