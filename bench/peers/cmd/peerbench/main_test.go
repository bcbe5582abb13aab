package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/baton-pub/baton/bench"
)

// TestBadRequest: a request the driver cannot run is an error that says
// why, before any server starts.
func TestBadRequest(t *testing.T) {
	for in, want := range map[string]string{
		`{"peer":"kafka","dir":"/tmp","item_size":128,"sources":1}`: `unknown peer "kafka"`,
		`{"peer":"nats"}`: "needs dir",
		`not json`:        "read request",
	} {
		_, err := run(context.Background(), strings.NewReader(in), t.Logf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

// TestMissingBinary: a peer whose server binary the bench did not give is
// a failure in the result, not a crash.
func TestMissingBinary(t *testing.T) {
	for _, peer := range []string{"nats", "nats-r3", "centrifugo", "centrifugo-3"} {
		in := `{"peer":"` + peer + `","dir":"` + t.TempDir() + `","item_size":128,"sources":1,"bins":{}}`
		res, err := run(context.Background(), strings.NewReader(in), t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "binary") {
			t.Errorf("%s: failures %q", peer, res.Failures)
		}
	}
}

// TestCentrifugoPublish: batch 1 goes to /api/publish, larger batches to
// /api/batch, every publish with the item's msg_id as idempotency key and
// the API key; an error in the answer's body fails the send.
func TestCentrifugoPublish(t *testing.T) {
	var paths []string
	var bodies []map[string]any
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != cfAPIKey {
			t.Errorf("API key %q", r.Header.Get("X-API-Key"))
		}
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		paths, bodies = append(paths, r.URL.Path), append(bodies, m)
		if fail {
			_, _ = w.Write([]byte(`{"error":{"code":108,"message":"not available"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"result":{}}`))
	}))
	defer srv.Close()
	s := &cfSender{hc: srv.Client(), base: srv.URL, ch: "bench-x"}
	ctx := context.Background()
	if err := s.Send(ctx, bench.Batch{Src: "s1", First: 5, Due: []int64{1}, Pad: "p"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, bench.Batch{Src: "s2", First: 8, Due: []int64{1, 2}, Pad: "p"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(paths, " ") != "/api/publish /api/batch" {
		t.Fatalf("paths %v", paths)
	}
	if bodies[0]["idempotency_key"] != "s1-5" || bodies[0]["channel"] != "bench-x" {
		t.Errorf("publish %v", bodies[0])
	}
	cmds, _ := bodies[1]["commands"].([]any)
	if len(cmds) != 2 {
		t.Fatalf("batch %v", bodies[1])
	}
	if p := cmds[1].(map[string]any)["publish"].(map[string]any); p["idempotency_key"] != "s2-9" {
		t.Errorf("second publish %v", p)
	}
	fail = true
	if err := s.Send(ctx, bench.Batch{Src: "s1", First: 6, Due: []int64{1}, Pad: "p"}); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("an error answer: %v", err)
	}
}

// TestToken: the connection token is an HS256 JWT signed with the secret
// of Centrifugo's config, whose channels claim subscribes the terminal.
func TestToken(t *testing.T) {
	tok := token("bench-c", 3)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	m := hmac.New(sha256.New, []byte(cfSecret))
	m.Write([]byte(parts[0] + "." + parts[1]))
	if base64.RawURLEncoding.EncodeToString(m.Sum(nil)) != parts[2] {
		t.Fatal("signature does not verify")
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Sub      string
		Channels []string
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Sub != "t3" || len(c.Channels) != 1 || c.Channels[0] != "bench-c" {
		t.Fatalf("claims %s (%v)", b, err)
	}
	if !strings.Contains(cfConf(8000, "127.0.0.1:6379"), `"hmac_secret_key": "`+cfSecret+`"`) {
		t.Fatal("the config's secret is not the tokens'")
	}
}
