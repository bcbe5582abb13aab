package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestLogsShowNoPayloadOrSecret runs a real node with tokens at debug
// level, through publishes and subscriptions that succeed and fail
// (malformed, too large, wrong media type, forbidden, forged, unknown
// topic right), each value holding a marker, then reads its whole log: no
// line shows a value, a token or the key's secret, and every API line
// names its request (docs/operations.md, "Logs").
func TestLogsShowNoPayloadOrSecret(t *testing.T) {
	const marker = "PAYLOAD-7f3a9c"
	key, secret := hmacKey(t)
	admin := mint(t, key, "--admin", "--sub", "ops")
	c := newClusterWith(t, sqliteEngine, 1, testTTL, admin, "--jwt-key", key, "--max-body", "4096")
	n := c.nodes[0]
	const topic = "quotes.eur"
	pub := mint(t, key, "--publish", "quotes.*", "--subscribe", "quotes.*", "--sub", "src")
	sub := mint(t, key, "--subscribe", "quotes.*", "--sub", "term")
	otherKey, _ := hmacKey(t)
	forged := mint(t, otherKey, "--publish", "*")
	itemsURL := n.URL() + "/v1/topics/" + topic + "/items"

	if status, b := publishOnce(t, n.URL(), topic, pub, inHeader, "m1"); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, b)
	}
	value := func(s string) string { return `{"id":"k","value":{"v":"` + marker + s + `"}}` }
	for _, tc := range []struct {
		what, token, ctype, body string
		status                   int
	}{
		{"a value", pub, "application/json", value("ok"), http.StatusCreated},
		{"a batch", pub, "application/json", `[` + value("b1") + `,` + value("b2") + `]`, http.StatusCreated},
		{"malformed JSON", pub, "application/json", `{"id":"k","value":{"v":"` + marker + `"`, http.StatusBadRequest},
		{"a value that is not JSON", pub, "application/json", `{"id":"k","value":` + marker + `}`, http.StatusBadRequest},
		{"a bad id beside a value", pub, "application/json", `{"id":"","value":"` + marker + `"}`, http.StatusBadRequest},
		{"a body too large", pub, "application/json", value(strings.Repeat("x", 8192)), http.StatusRequestEntityTooLarge},
		{"a wrong media type", pub, "text/plain", value("text"), http.StatusUnsupportedMediaType},
		{"a subscribe-only token", sub, "application/json", value("sub"), http.StatusForbidden},
		{"a forged token", forged, "application/json", value("forged"), http.StatusUnauthorized},
		{"no token", "", "application/json", value("none"), http.StatusUnauthorized},
	} {
		req, err := newRequest(context.Background(), http.MethodPost, itemsURL, tc.token, inHeader, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tc.ctype)
		// An id that is not kept (a space): replaced, so never logged.
		req.Header.Set("X-Request-Id", "id "+marker)
		status, b := do(t, req)
		if status != tc.status {
			t.Errorf("publish %s: %d %s, want %d", tc.what, status, b, tc.status)
		}
		if status >= 400 && !strings.Contains(string(b), `"request_id":"`) {
			t.Errorf("publish %s: the error body names no request: %s", tc.what, b)
		}
	}
	// Streams that read the values, with the token in each place, and
	// refused ones.
	for _, where := range []string{inHeader, inCookie, inQuery} {
		if got, _ := streamSeqs(t, n.URL(), topic, sub, where, 0, 4); len(got) != 4 {
			t.Errorf("stream with the token in %s: seqs %v", where, got)
		}
	}
	for _, token := range []string{forged, ""} {
		if status, _ := call(t, http.MethodGet, n.URL()+"/v1/topics/"+topic+"/events", token, inQuery, ""); status != http.StatusUnauthorized {
			t.Errorf("stream with a bad token: %d", status)
		}
	}
	if status, _ := call(t, http.MethodGet, itemsURL, sub, inHeader, ""); status != http.StatusOK {
		t.Errorf("poll the items: %d", status)
	}

	n.Stop(testTTL)
	log, err := os.ReadFile(n.Log())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte(`"level":"DEBUG"`)) {
		t.Fatalf("the log has no debug line: is --log-level debug in effect?\n%s", tail(log, 2048))
	}
	if i := bytes.Index(log, []byte(marker)); i >= 0 {
		line := log[bytes.LastIndexByte(log[:i], '\n')+1:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		t.Errorf("the log shows a payload value: %s", line)
	}
	noSecretIn(t, n.Name+"'s log", log, []string{admin, pub, sub, forged, secret})
	// Every line of the API names its request.
	var api int
	for _, line := range bytes.Split(bytes.TrimSpace(log), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, "http: ") && msg != "http: serve" {
			api++
			if id, _ := rec["request_id"].(string); id == "" {
				t.Errorf("an API log line names no request: %s", line)
			}
		}
	}
	if api < 20 {
		t.Errorf("%d API log lines, want a line per request at debug level", api)
	}
}
