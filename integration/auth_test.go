package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// hmacKey writes a fresh HMAC secret to a file for --jwt-key and `baton
// token --key`, and returns the file and the secret.
func hmacKey(t *testing.T) (file, secret string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	secret = hex.EncodeToString(b)
	file = filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, secret
}

// mint runs the real `baton token --key key ARGS...`, as an operator does.
func mint(t *testing.T, key string, args ...string) string {
	t.Helper()
	out, err := exec.Command(batonBin, append([]string{"token", "--key", key}, args...)...).Output()
	if err != nil {
		t.Fatalf("baton token %s: %v", strings.Join(args, " "), err)
	}
	tok := strings.TrimSpace(string(out))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("baton token %s printed %q, not a JWT", strings.Join(args, " "), tok)
	}
	return tok
}

// Where a request carries its token.
const (
	inNone   = ""
	inHeader = "header"
	inCookie = "cookie"
	inQuery  = "query"
)

// newRequest builds a request to u carrying token in where; body, if not
// empty, is sent as JSON.
func newRequest(ctx context.Context, method, u, token, where, body string) (*http.Request, error) {
	if where == inQuery {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + auth.QueryParam + "=" + url.QueryEscape(token)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch where {
	case inHeader:
		req.Header.Set("Authorization", "Bearer "+token)
	case inCookie:
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: token})
	}
	return req, nil
}

// call makes one request and returns its status and body.
func call(t *testing.T, method, u, token, where, body string) (int, []byte) {
	t.Helper()
	req, err := newRequest(context.Background(), method, u, token, where, body)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// do sends req and returns the status and body of its answer.
func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// errCode is the code of a JSON error answer ("" if it is none).
func errCode(b []byte) string {
	var env wire.ErrorResponse
	if json.Unmarshal(b, &env) != nil || env.Error == nil {
		return ""
	}
	return env.Error.Code
}

// receiptSeq is the seq of the receipt of a publish of one update.
func receiptSeq(t *testing.T, b []byte) uint64 {
	t.Helper()
	var r wire.PublishResponse
	if err := json.Unmarshal(b, &r); err != nil || len(r.Items) != 1 {
		t.Fatalf("not the receipt of one update (%v): %s", err, b)
	}
	return r.Items[0].Seq
}

// publishOnce publishes one update with token in where and returns
// the status and body, retrying while the topic has no holder yet (503).
func publishOnce(t *testing.T, base, topic, token, where, msgID string) (int, []byte) {
	t.Helper()
	body := fmt.Sprintf(`{"id":"k","value":{"msg":%q},"msg_id":%q}`, msgID, msgID)
	var status int
	var b []byte
	poll.Until(t, 30*time.Second, "an answer other than 503 to a publish", func() error {
		status, b = call(t, http.MethodPost, base+"/v1/topics/"+topic+"/items", token, where, body)
		if status == http.StatusServiceUnavailable {
			return fmt.Errorf("503 %s", b)
		}
		return nil
	})
	return status, b
}

// streamSeqs opens topic's event stream after lastID (Last-Event-ID) with
// token in where and reads it until it ends or until it has reached seq
// until (0: to its end). It returns the seqs of its items, in order, and
// whether it ended with an "auth" event.
func streamSeqs(t *testing.T, base, topic, token, where string, lastID, until uint64) (seqs []uint64, authEnded bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := newRequest(ctx, http.MethodGet, base+"/v1/topics/"+topic+"/events", token, where, "")
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", strconv.FormatUint(lastID, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open stream (%s): %v", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("open stream (token in %s): %d %s", where, resp.StatusCode, b)
	}
	errDone := fmt.Errorf("done")
	err = wire.ReadEvents(resp.Body, func(ev wire.Event) error {
		switch ev.Type {
		case wire.EventItem:
			it, err := ev.Item()
			if err != nil {
				return err
			}
			seqs = append(seqs, it.Seq)
			if until != 0 && it.Seq >= until {
				return errDone
			}
		case wire.EventAuth:
			authEnded = true
		}
		return nil
	})
	if err != nil && err != errDone {
		t.Fatalf("read stream (token in %s): %v", where, err)
	}
	return seqs, authEnded
}

// TestAuthEndToEnd runs a real node with --jwt-key and tokens minted by the
// real `baton token`, and uses it as clients do: publish and subscribe
// rights per topic (201, 403, 401, and nothing appended on a refusal), the
// token in a header, a cookie or the query, a stream that ends with an
// "auth" event when its token expires and resumes with a new token with no
// gap and no duplicate, the admin-only status. The node's debug log never
// shows a token or the secret.
func TestAuthEndToEnd(t *testing.T) {
	for name, eng := range engines {
		t.Run(name, func(t *testing.T) {
			key, secret := hmacKey(t)
			admin := mint(t, key, "--admin", "--sub", "ops")
			c := newClusterWith(t, eng, 1, testTTL, admin, "--jwt-key", key, "--cors-origins", "http://127.0.0.1:1")
			n := c.nodes[0]
			const topic = "quotes.eur"
			pub := mint(t, key, "--publish", "quotes.*", "--subscribe", "quotes.*", "--sub", "src")
			sub := mint(t, key, "--subscribe", "quotes.*", "--sub", "term")
			other := mint(t, key, "--publish", "news.*", "--subscribe", "news.*")
			otherKey, _ := hmacKey(t)
			forged := mint(t, otherKey, "--publish", "*")
			tokens := []string{admin, pub, sub, other, forged}
			itemsURL := n.URL() + "/v1/topics/" + topic + "/items"

			if status, b := publishOnce(t, n.URL(), topic, pub, inHeader, "m1"); status != http.StatusCreated {
				t.Fatalf("publish with a publish token: %d %s, want 201", status, b)
			}
			for _, tc := range []struct {
				what, token, where string
				origin             string // a browser's page, if set
				status             int
				code               string
			}{
				{"a subscribe-only token", sub, inHeader, "", http.StatusForbidden, "forbidden"},
				{"a token for other topics", other, inHeader, "", http.StatusForbidden, "forbidden"},
				{"no token", "", inNone, "", http.StatusUnauthorized, "unauthorized"},
				{"a token signed with another key", forged, inHeader, "", http.StatusUnauthorized, "unauthorized"},
				{"a cookie token from a page of an unlisted origin", pub, inCookie, "http://127.0.0.1:2", http.StatusForbidden, "forbidden"},
				{"a publish token in a cookie, from the listed origin", pub, inCookie, "http://127.0.0.1:1", http.StatusCreated, ""},
			} {
				req, err := newRequest(context.Background(), http.MethodPost, itemsURL, tc.token, tc.where, `{"id":"k","value":2,"msg_id":"`+tc.what+`"}`)
				if err != nil {
					t.Fatal(err)
				}
				if tc.origin != "" {
					req.Header.Set("Origin", tc.origin)
				}
				status, b := do(t, req)
				if status != tc.status || (tc.code != "" && errCode(b) != tc.code) {
					t.Errorf("publish with %s: %d %s, want %d %s", tc.what, status, b, tc.status, tc.code)
				}
				// Seqs are given in order: the refused publishes before
				// this one appended nothing if it has seq 2.
				if status == http.StatusCreated && receiptSeq(t, b) != 2 {
					t.Errorf("publish with %s after the refused ones: seq %d, want 2", tc.what, receiptSeq(t, b))
				}
			}

			// Subscribe with the token where a browser and a bare client
			// put it; a token without the right for the topic is refused.
			for _, where := range []string{inHeader, inCookie, inQuery} {
				if got, _ := streamSeqs(t, n.URL(), topic, sub, where, 0, 2); len(got) != 2 || got[0] != 1 || got[1] != 2 {
					t.Errorf("stream with the token in %s: seqs %v, want [1 2]", where, got)
				}
			}
			for _, tc := range []struct {
				token  string
				status int
			}{{other, http.StatusForbidden}, {"", http.StatusUnauthorized}} {
				if status, b := call(t, http.MethodGet, n.URL()+"/v1/topics/"+topic+"/events", tc.token, inQuery, ""); status != tc.status {
					t.Errorf("stream with token %.10q: %d %s, want %d", tc.token, status, b, tc.status)
				}
			}

			// A stream ends with an "auth" event when its token expires;
			// the client resumes with a new token from the last seq it saw.
			short := mint(t, key, "--subscribe", topic, "--ttl", "3s")
			tokens = append(tokens, short)
			first, authEnded := streamSeqs(t, n.URL(), topic, short, inCookie, 0, 0)
			if !authEnded {
				t.Fatalf("the stream of a 3s token ended without an auth event (seqs %v)", first)
			}
			// Reopened with the expired token (still within the
			// verifier's leeway for clock skew), the stream is refused:
			// an EventSource reconnecting on its own gets an error, not
			// a stream that ends at once, again and again.
			if status, b := call(t, http.MethodGet, n.URL()+"/v1/topics/"+topic+"/events", short, inCookie, ""); status != http.StatusUnauthorized || errCode(b) != "unauthorized" {
				t.Errorf("stream reopened with the expired token: %d %.200s, want 401 unauthorized", status, b)
			}
			for i := range 3 {
				if status, b := publishOnce(t, n.URL(), topic, pub, inHeader, "after-expiry-"+strconv.Itoa(i)); status != http.StatusCreated {
					t.Fatalf("publish: %d %s", status, b)
				}
			}
			var last uint64
			if len(first) > 0 {
				last = first[len(first)-1]
			}
			renewed := mint(t, key, "--subscribe", topic)
			tokens = append(tokens, renewed)
			rest, _ := streamSeqs(t, n.URL(), topic, renewed, inCookie, last, 5)
			if got := append(first, rest...); fmt.Sprint(got) != "[1 2 3 4 5]" {
				t.Errorf("seqs before the auth event %v and after resuming with a new token %v: want 1 to 5 once each", first, rest)
			}

			// The status names the store and nodes: admins only.
			for _, tc := range []struct {
				token  string
				status int
			}{{"", http.StatusUnauthorized}, {pub, http.StatusForbidden}, {admin, http.StatusOK}} {
				status, b := call(t, http.MethodGet, n.URL()+"/v1/status", tc.token, inHeader, "")
				if status != tc.status {
					t.Errorf("status with token %.10q: %d %s, want %d", tc.token, status, b, tc.status)
				}
				if status == http.StatusOK && !strings.Contains(string(b), `"access":"tokens"`) {
					t.Errorf("status does not say access tokens: %s", b)
				}
			}

			n.Stop(testTTL)
			log, err := os.ReadFile(n.Log())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(log), "level=DEBUG") && !strings.Contains(string(log), `"level":"DEBUG"`) {
				t.Errorf("the log has no debug line: is --log-level debug in effect?\n%s", tail(log, 2048))
			}
			noSecretIn(t, n.Name+"'s log", log, append(tokens, secret))
		})
	}
}

// noSecretIn fails t if b shows one of secrets (tokens or keys). A token's
// signature is enough to look for; a secret is never printed, the failure
// names it by its place in secrets.
func noSecretIn(t *testing.T, what string, b []byte, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		if strings.Contains(string(b), s[strings.LastIndex(s, ".")+1:]) {
			t.Errorf("%s shows secret #%d of %d", what, i+1, len(secrets))
		}
	}
}
