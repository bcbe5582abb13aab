package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/golang-jwt/jwt/v5"
)

// leakScan collects everything a user or an operator can see of a node:
// answers (status line, headers, body), log lines and CLI output, and
// fails the test if any holds one of the secrets.
type leakScan struct {
	t       *testing.T
	secrets []string
	seen    int // pieces of output scanned
}

func (s *leakScan) add(secret string) {
	s.secrets = append(s.secrets, secret)
	// A token is signed: its signature alone is enough to replay it.
	if parts := strings.Split(secret, "."); len(parts) == 3 {
		s.secrets = append(s.secrets, parts[2])
	}
}

// check fails the test if text, seen at where, holds a secret.
func (s *leakScan) check(where, text string) {
	s.t.Helper()
	s.seen++
	for i, sec := range s.secrets {
		if strings.Contains(text, sec) {
			s.t.Errorf("%s shows secret #%d:\n%s", where, i, clipText(text, 2048))
		}
	}
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TestLeakNoSecret starts a real node with a secret in every place one can
// be (a Redis password that url.Parse refuses, an HMAC key file, tokens in
// the Authorization header, the baton_token cookie and the access_token
// query parameter, valid, expired, forged and signed by another key), at
// --log-level debug, exercises every route with good and bad input and
// refused auth, runs the CLI against it and on failing store URLs (one with
// a sentinel_password), and scans every answer, header, log line and CLI
// output: no secret appears anywhere.
func TestLeakNoSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	scan := &leakScan{t: t}

	const redisPW = "LkRedisPw^{1}q7"
	const sentinelPW = "LkSentinelPw5z"
	jwtSecret := "LkJwtHmacSecret-6c1f0e9a8b7d4c3e2f1a0b9c8d7e6f5a"
	otherSecret := "LkOtherHmacSecret-a1b2c3d4e5f60718293a4b5c6d7e8f90"
	for _, s := range []string{redisPW, sentinelPW, jwtSecret, otherSecret} {
		scan.add(s)
	}
	keyFile := filepath.Join(dir, "jwt.key")
	otherKey := filepath.Join(dir, "other.key")
	for f, s := range map[string]string{keyFile: jwtSecret, otherKey: otherSecret} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	r := redistest.Start(t, redistest.Options{Password: redisPW, KeyspaceEvents: "Ex"})
	store := r.URL(0)
	if !strings.Contains(store, redisPW) {
		t.Fatalf("the store URL %q does not carry the password: the test would prove nothing", store)
	}
	n, err := proc.Start(ctx, batonBin, dir, "n1", store, "--log-level", "debug", "--jwt-key", keyFile,
		"--debug-listen", "127.0.0.1:0", "--lease-ttl", testTTL.String(), "--client-rate", "100000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)

	mint := func(key string, rights auth.Rights, sub string) string {
		tok, err := auth.Mint(key, auth.Token{Subject: sub, TTL: time.Hour, Rights: rights})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin := mint(keyFile, auth.Rights{Admin: true, Publish: []string{"*"}, Subscribe: []string{"*"}}, "admin")
	reader := mint(keyFile, auth.Rights{Subscribe: []string{"other"}}, "reader")
	wrongKey := mint(otherKey, auth.Rights{Admin: true}, "intruder")
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "late", "exp": time.Now().Add(-time.Hour).Unix(), "baton.admin": true,
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	forged := admin[:len(admin)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(admin, "AA")]
	tokens := map[string]string{"admin": admin, "reader": reader, "wrong-key": wrongKey, "expired": expired, "forged": forged}
	for _, tok := range tokens {
		scan.add(tok)
	}

	// Publish with the admin token, so that every read route has data.
	do := func(method, path, ct, body string, hdr map[string]string, how string) {
		t.Helper()
		req, err := http.NewRequest(method, n.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		// A stream never ends: read what it sends first.
		var b []byte
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ = bufio.NewReader(resp.Body).Peek(64)
		} else {
			b, _ = io.ReadAll(resp.Body)
		}
		resp.Body.Close()
		var out strings.Builder
		fmt.Fprintf(&out, "%s\n", resp.Status)
		_ = resp.Header.Write(&out)
		out.Write(b)
		scan.check(fmt.Sprintf("%s %s (%s)", method, strings.Split(path, "access_token=")[0], how), out.String())
	}
	bearer := map[string]string{"Authorization": "Bearer " + admin}
	do("POST", "/v1/topics/leak/items", "application/json", `[{"id":"a","value":1,"msg_id":"m1"},{"id":"b","value":2,"msg_id":"m2"}]`, bearer, "admin token in a header")
	poll.Until(t, 30*time.Second, "the items published", func() error {
		resp, err := httpc.Get(n.URL() + "/v1/topics/leak/cursor?access_token=" + admin)
		if err != nil {
			return err
		}
		var c struct{ Seq uint64 }
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err == nil && c.Seq < 2 {
			err = fmt.Errorf("cursor at %d", c.Seq)
		}
		return err
	})

	routes := []struct{ method, path, ct, body string }{
		{"GET", "/healthz", "", ""},
		{"GET", "/readyz", "", ""},
		{"GET", "/v1/status", "", ""},
		{"GET", "/v1/topics", "", ""},
		{"GET", "/v1/topics/leak", "", ""},
		{"GET", "/v1/topics/leak/items?after=0", "", ""},
		{"GET", "/v1/topics/leak/items?after=x", "", ""},
		{"GET", "/v1/topics/leak/items?after=9223372036854775808", "", ""},
		{"GET", "/v1/topics/leak/events?after=0", "", ""},
		{"GET", "/v1/topics/leak/handovers", "", ""},
		{"GET", "/v1/topics/leak/lock", "", ""},
		{"GET", "/v1/topics/leak/cursor", "", ""},
		{"GET", "/v1/topics/leak/checkpoint", "", ""},
		{"GET", "/v1/topics/leak/items/1/proof", "", ""},
		{"GET", "/v1/topics/leak/consistency?from=1&to=2", "", ""},
		{"GET", "/v1/topics/bad%20topic/items", "", ""},
		{"GET", "/v1/nowhere", "", ""},
		{"DELETE", "/v1/topics/leak/items", "", ""},
		{"OPTIONS", "/v1/topics/leak/items", "", ""},
		{"POST", "/v1/topics/leak/items", "application/json", `{"id":"c","value":3,"msg_id":"m3"}`},
		{"POST", "/v1/topics/leak/items", "application/json", `{"id":"c","value":[1,2`},
		{"POST", "/v1/topics/leak/items", "application/json", "{\"id\":\"c\xff\",\"value\":1}"},
		{"POST", "/v1/topics/leak/items", "text/plain", `{"id":"c","value":1}`},
		{"POST", "/v1/topics/leak/items", "application/x-www-form-urlencoded", `id=c&value=1`},
	}
	for _, rt := range routes {
		do(rt.method, rt.path, rt.ct, rt.body, nil, "no token")
		for name, tok := range tokens {
			do(rt.method, rt.path, rt.ct, rt.body, map[string]string{"Authorization": "Bearer " + tok, "Origin": "https://evil.example"}, name+" token in a header")
			do(rt.method, rt.path, rt.ct, rt.body, map[string]string{"Cookie": "baton_token=" + tok}, name+" token in a cookie")
			sep := "?"
			if strings.Contains(rt.path, "?") {
				sep = "&"
			}
			do(rt.method, rt.path+sep+"access_token="+tok, rt.ct, rt.body, nil, name+" token in the query")
		}
	}

	// The profiler, if an operator opened it: never the command line.
	if addr := logField(t, n.Log(), "profiler listening", "addr"); addr != "" {
		for _, p := range []string{"/debug/pprof/cmdline", "/debug/pprof/"} {
			resp, err := httpc.Get("http://" + addr + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			scan.check("GET "+p+" of the profiler", string(b))
		}
	} else {
		t.Error("the profiler's address is not in the log")
	}

	// The CLI against the node (refused: it has no token) and on stores
	// that fail, each URL holding the secrets.
	cli := func(args ...string) {
		out, _ := exec.Command(batonBin, args...).CombinedOutput()
		scan.check("baton "+strings.Join(args[:1], " "), string(out))
	}
	cli("status", "--node", n.Addr)
	cli("publish", "leak", "--id", "x", "--value", "1", "--node", n.Addr)
	cli("ledger", "verify", "leak", "--store", store)
	for _, bad := range []string{
		"rediss+sentinel://:" + redisPW + "@127.0.0.1:1/m/0?sentinel_password=" + sentinelPW + "&dial_timeout=100ms",
		"redis+sentinel://127.0.0.1:1/m/0?sentinel_password=" + sentinelPW + "&password=" + redisPW + "&dial_timeout=100ms",
		"redis://:" + redisPW + "%zz@127.0.0.1:1/0",
	} {
		cli("serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "debug", "--jwt-key", keyFile, "--store", bad)
		cli("ledger", "verify", "--store", bad)
	}

	n.Stop(testTTL)
	f, err := os.Open(n.Log())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 1<<20)
	for i := 1; lines.Scan(); i++ {
		scan.check(fmt.Sprintf("log line %d", i), lines.Text())
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d answers, log lines and outputs scanned for %d secrets", scan.seen, len(scan.secrets))
}

// logField returns the value of field in the first JSON log line whose msg
// is msg, "" if there is none.
func logField(t *testing.T, path, msg, field string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^.*"msg":"` + regexp.QuoteMeta(msg) + `".*$`)
	line := re.Find(b)
	if line == nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return ""
	}
	s, _ := m[field].(string)
	return s
}
