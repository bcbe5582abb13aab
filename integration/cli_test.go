package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCLIBadInput: a bad flag or store URL is one clear message naming
// the problem, and a non-zero exit, at start-up.
func TestCLIBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--lease-ttl", "1ms"}, "--lease-ttl"},
		{[]string{"serve", "--max-body", "10"}, "--max-body"},
		{[]string{"serve", "--listen", "nonsense"}, "--listen"},
		{[]string{"serve", "--advertise", ":8080"}, "--advertise"},
		{[]string{"serve", "--advertise", "node-2:99999"}, "--advertise"},
		{[]string{"serve", "--store", "bogus://x"}, `unknown scheme "bogus"`},
		{[]string{"serve", "--store", "redis://127.0.0.1:1/0"}, "127.0.0.1:1"},
		{[]string{"serve", "--store", "sqlite:///tmp/x.db?sync=maybe"}, "sync"},
		{[]string{"publish", "bad topic!", "--id", "a", "--value", "1"}, "topic"},
		{[]string{"publish", "t", "--id", "a", "--value", "{not json"}, "not valid JSON"},
		{[]string{"demo", "--nodes", "1"}, "--nodes"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(batonBin, tc.args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("exit 0, want failure; output:\n%s", out.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running after 20s; output:\n%s", out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Fatalf("output does not name %q:\n%s", tc.want, out.String())
			}
			if n := strings.Count(strings.TrimSpace(out.String()), "\n"); n > 3 {
				t.Fatalf("want one clear message, got %d lines:\n%s", n+1, out.String())
			}
		})
	}
}

// TestHTTPBadInputRealServer: bad requests to a real server get a 4xx with
// a JSON error and change nothing.
func TestHTTPBadInputRealServer(t *testing.T) {
	c := newCluster(t, sqliteEngine, 1, time.Second)
	base := c.nodes[0].URL()
	post := func(topic, body string) (int, map[string]any) {
		resp, err := http.Post(base+"/v1/topics/"+topic+"/items", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for _, tc := range []struct{ topic, body string }{
		{"t", `{"id": "a", "value": `},
		{"t", `{"value": 1}`},
		{"t", `[{"id": "a", "value": 1}, {"id": "", "value": 2}]`},
		{"t", `{"id": "a", "value": 1, "extra": true}`},
		{"bad%20topic", `{"id": "a", "value": 1}`},
		{"t", `{"id": "a", "value": "` + strings.Repeat("x", 2<<20) + `"}`},
	} {
		code, m := post(tc.topic, tc.body)
		e, _ := m["error"].(map[string]any)
		// An absent field is nil, not "": compare the strings.
		ecode, _ := e["code"].(string)
		msg, _ := e["message"].(string)
		if code < 400 || code >= 500 || ecode == "" || msg == "" {
			t.Errorf("POST %s %.40q: %d %v", tc.topic, tc.body, code, m)
		}
	}
	var info struct {
		LastSeq uint64 `json:"last_seq"`
	}
	if err := c.get("/v1/topics/t", &info); err == nil && info.LastSeq != 0 {
		t.Fatalf("bad requests changed the topic: last_seq %d", info.LastSeq)
	}
	if code, _ := post("t", `{"id": "a", "value": 1}`); code != 201 {
		t.Fatalf("a good request after the bad ones: %d", code)
	}
}
