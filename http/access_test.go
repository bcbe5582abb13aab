package http

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/limits"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/wire"
)

// authEnv is a server that checks tokens signed with an HMAC secret,
// issuer "idp" and audience "baton".
type authEnv struct {
	*env
	keyFile string
}

func newAuthEnv(t *testing.T, cfg Config) *authEnv {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{KeyFiles: []string{keyFile}, Issuer: "idp", Audience: "baton"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = v
	cfg.Status = func(context.Context, int) (wire.Status, error) {
		return wire.Status{NodeStatus: baton.NodeStatus{Node: "n1", Store: "redis://:xxxxx@h:6379/0"}}, nil
	}
	return &authEnv{env: newEnv(t, nil, hub.Options{}, cfg), keyFile: keyFile}
}

func (a *authEnv) token(ttl time.Duration, r auth.Rights) string {
	a.t.Helper()
	tok, err := auth.Mint(a.keyFile, auth.Token{Subject: "s", Issuer: "idp", Audience: "baton", TTL: ttl, Rights: r})
	if err != nil {
		a.t.Fatal(err)
	}
	return tok
}

// call sends a request with tok in the given place ("header", "cookie",
// "query") and returns the status and the error code, if any.
func (a *authEnv) call(method, path, tok, place string) (int, string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var body io.Reader
	switch method {
	case "POST":
		body = strings.NewReader(`{"id":"a","value":1}`)
	case "PUT":
		body = strings.NewReader(`{"items":5}`)
	}
	if tok != "" && place == "query" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "access_token=" + tok
	}
	req, _ := nethttp.NewRequestWithContext(ctx, method, a.url+path, body)
	req.Header.Set("Content-Type", "application/json")
	switch {
	case tok == "":
	case place == "header":
		req.Header.Set("Authorization", "Bearer "+tok)
	case place == "cookie":
		req.AddCookie(&nethttp.Cookie{Name: auth.CookieName, Value: tok})
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, ""
	}
	var e wire.ErrorResponse
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
			a.t.Fatalf("%s %s: %d with body %q", method, path, resp.StatusCode, b)
		}
		if strings.Contains(string(b), tok) && tok != "" {
			a.t.Fatalf("%s %s: the answer quotes the token", method, path)
		}
		return resp.StatusCode, e.Error.Code
	}
	return resp.StatusCode, ""
}

// TestAccessMatrix calls every route with every kind of token and checks
// the answer: 401 without a usable token, 403 without the right, the
// route's own answer with it; and nothing is appended by a refused POST.
func TestAccessMatrix(t *testing.T) {
	a := newAuthEnv(t, Config{})
	pub := a.token(time.Hour, auth.Rights{Publish: []string{"quotes.*"}, Subscribe: []string{"quotes.*"}})
	sub := a.token(time.Hour, auth.Rights{Subscribe: []string{"quotes.*"}})
	admin := a.token(time.Hour, auth.Rights{Admin: true})
	expired := sign(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), jwt.MapClaims{"iss": "idp", "aud": "baton", "exp": time.Now().Add(-time.Hour).Unix(), "baton": map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}, "admin": true}})
	wrongKey := sign(t, jwt.SigningMethodHS256, []byte("another secret of 32 bytes or more!"), jwt.MapClaims{"iss": "idp", "aud": "baton", "exp": time.Now().Add(time.Hour).Unix(), "baton": map[string]any{"admin": true}})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrongAlg := sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"iss": "idp", "aud": "baton", "exp": time.Now().Add(time.Hour).Unix(), "baton": map[string]any{"admin": true}})
	wrongAud := sign(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), jwt.MapClaims{"iss": "idp", "aud": "other", "exp": time.Now().Add(time.Hour).Unix(), "baton": map[string]any{"admin": true}})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "idp", "aud": "baton", "exp": time.Now().Add(time.Hour).Unix(), "baton": map[string]any{"admin": true}}).SignedString(jwt.UnsafeAllowNoneSignatureType)

	type route struct {
		method, path string
		right        auth.Right // 0: public
		topic        string
		ok           int // status when allowed
	}
	routes := []route{
		{"GET", "/v1/topics", auth.Subscribe, "", 200},
		{"GET", "/v1/topics/quotes.a", auth.Subscribe, "quotes.a", 404},
		{"GET", "/v1/topics/quotes.a/items", auth.Subscribe, "quotes.a", 200},
		{"POST", "/v1/topics/quotes.a/items", auth.Publish, "quotes.a", 201},
		{"POST", "/v1/topics/news/items", auth.Publish, "news", 201},
		{"GET", "/v1/topics/quotes.a/events?after=0", auth.Subscribe, "quotes.a", 200},
		{"GET", "/v1/topics/news/events", auth.Subscribe, "news", 200},
		{"GET", "/v1/topics/quotes.a/handovers", auth.Admin, "", 200},
		{"GET", "/v1/topics/quotes.a/lock", auth.Admin, "", 200},
		{"GET", "/v1/topics/quotes.a/cursor", auth.Admin, "", 200},
		{"GET", "/v1/status", auth.Admin, "", 200},
		{"GET", "/v1/topics/quotes.a/retention", auth.Admin, "", 200},
		{"PUT", "/v1/topics/quotes.a/retention", auth.Admin, "", 200},
		{"DELETE", "/v1/topics/quotes.none", auth.Admin, "", 404},
		{"GET", "/metrics", auth.Admin, "", 404},                                   // no metrics on this server
		{"GET", "/v1/topics/quotes.a/checkpoint", auth.Subscribe, "quotes.a", 404}, // no ledger on this server
		{"GET", "/v1/topics/quotes.a/items/1/proof", auth.Subscribe, "quotes.a", 404},
		{"GET", "/v1/topics/quotes.a/consistency?from=1&to=1", auth.Subscribe, "quotes.a", 404},
		{"GET", "/healthz", 0, "", 200},
		{"GET", "/readyz", 0, "", 200},
	}
	grants := map[string]auth.Rights{
		pub:   {Publish: []string{"quotes.*"}, Subscribe: []string{"quotes.*"}},
		sub:   {Subscribe: []string{"quotes.*"}},
		admin: {Admin: true},
	}
	names := map[string]string{pub: "publisher", sub: "subscriber", admin: "admin", expired: "expired", wrongKey: "wrong key", wrongAlg: "wrong algorithm", wrongAud: "wrong audience", none: "alg none", "": "no token"}
	posted := map[string]int{}
	for _, rt := range routes {
		for tok, name := range names {
			for _, place := range []string{"header", "cookie", "query"} {
				if tok == "" && place != "header" {
					continue
				}
				wantStatus, wantCode := rt.ok, ""
				g, valid := grants[tok]
				switch {
				case rt.right == 0:
				case !valid:
					wantStatus, wantCode = 401, baton.CodeUnauthorized
				case rt.right == auth.Admin && !g.Admin:
					wantStatus, wantCode = 403, baton.CodeForbidden
				case rt.right == auth.Publish && !patterns(g.Publish).Match(rt.topic),
					rt.right == auth.Subscribe && rt.topic != "" && !patterns(g.Subscribe).Match(rt.topic):
					wantStatus, wantCode = 403, baton.CodeForbidden
				}
				status, code := a.call(rt.method, rt.path, tok, place)
				if rt.path == "/v1/topics/quotes.a" && status == 200 {
					status = 404 // the topic exists once a POST went through
				}
				if wantCode == "" && (code == baton.CodeUnauthorized || code == baton.CodeForbidden) || wantCode != "" && code != wantCode || status != wantStatus {
					t.Errorf("%s %s, %s token in the %s: %d %q, want %d %q", rt.method, rt.path, name, place, status, code, wantStatus, wantCode)
				}
				if rt.method == "POST" && status == 201 {
					posted[rt.topic]++
				}
			}
		}
	}
	for _, topic := range []string{"quotes.a", "news"} {
		items, err := a.store.Items(context.Background(), topic, 0, 1000)
		if err != nil && len(items) != 0 {
			t.Fatal(err)
		}
		if len(items) != posted[topic] {
			t.Errorf("topic %s holds %d items; %d POSTs were accepted", topic, len(items), posted[topic])
		}
	}
	if posted["quotes.a"] == 0 || posted["news"] != 0 {
		t.Errorf("accepted POSTs: %v", posted)
	}
}

func patterns(list []string) auth.Patterns {
	ps, err := auth.ParsePatterns(list)
	if err != nil {
		panic(err)
	}
	return ps
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTopicListFiltered: a token lists only the topics it may read; an
// admin lists all.
func TestTopicListFiltered(t *testing.T) {
	a := newAuthEnv(t, Config{})
	for _, topic := range []string{"quotes.a", "quotes.b", "news"} {
		appendN(t, a.store, topic, 1)
	}
	for rights, want := range map[*auth.Rights]string{
		{Subscribe: []string{"quotes.*"}}: "quotes.a quotes.b",
		{Publish: []string{"*"}}:          "",
		{Admin: true}:                     "news quotes.a quotes.b",
	} {
		var got wire.TopicsResponse
		a.do("GET", "/v1/topics", nil, map[string]string{"Authorization": "Bearer " + a.token(time.Hour, *rights)}, &got)
		if strings.Join(got.Topics, " ") != want {
			t.Errorf("%+v lists %v, want %q", *rights, got.Topics, want)
		}
	}
}

func appendN(t *testing.T, st baton.Store, topic string, n int) {
	t.Helper()
	for i := range n {
		if _, err := st.Append(context.Background(), topic, []baton.Update{{ID: "x", Value: []byte("1"), MsgID: topic + string(rune('a'+i))}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamEndsWhenItsTokenExpires: an "auth" event, then the end of the
// stream, once the token's exp has passed.
func TestStreamEndsWhenItsTokenExpires(t *testing.T) {
	forEachWriter(t, func(t *testing.T, writer string) {
		a := newAuthEnv(t, Config{SSEWriter: writer, Heartbeat: 50 * time.Millisecond})
		tok := a.token(1500*time.Millisecond, auth.Rights{Subscribe: []string{"*"}})
		req, _ := nethttp.NewRequest("GET", eventsURL(a.url, testTopic, ""), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		done := make(chan []string, 1)
		go func() {
			var kinds []string
			_ = wire.ReadEvents(resp.Body, func(ev wire.Event) error {
				kinds = append(kinds, ev.Type)
				return nil
			})
			done <- kinds
		}()
		select {
		case kinds := <-done:
			if len(kinds) != 1 || kinds[0] != wire.EventAuth {
				t.Fatalf("events before the end: %v, want one auth event", kinds)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the stream outlived its token")
		}
	})
}

// TestLimitsPerClient: over its rate a client gets 429 with Retry-After;
// over its streams, 429 too_many; another client is not affected.
func TestLimitsPerClient(t *testing.T) {
	a := newAuthEnv(t, Config{Limits: limits.Config{Rate: 0.01, Burst: 3, Streams: 1}, Heartbeat: 50 * time.Millisecond})
	one := a.token(time.Hour, auth.Rights{Subscribe: []string{"*"}})
	for i := range 3 {
		if status, _ := a.call("GET", "/v1/topics/quotes/items", one, "header"); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	req, _ := nethttp.NewRequest("GET", a.url+"/v1/topics/quotes/items", nil)
	req.Header.Set("Authorization", "Bearer "+one)
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th request: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another subject has its own bucket and its own streams.
	tok, err := auth.Mint(a.keyFile, auth.Token{Subject: "other", Issuer: "idp", Audience: "baton", TTL: time.Hour, Rights: auth.Rights{Subscribe: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	openStream(t, nethttp.DefaultClient, eventsURL(a.url, testTopic, "access_token="+tok), "")
	status, code := a.call("GET", "/v1/topics/"+testTopic+"/events", tok, "header")
	if status != 429 || code != baton.CodeTooMany {
		t.Fatalf("second stream of one client: %d %q", status, code)
	}
}

// TestBrowserWritesRefused: a write that a browser could send to any
// origin without a preflight (text/plain, a form) is refused with 415, a
// write from an origin not listed with 403, and neither appends.
func TestBrowserWritesRefused(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{CORSOrigins: []string{"https://app.example"}})
	for _, c := range []struct {
		ct, origin string
		status     int
	}{
		{"text/plain", "", 415},
		{"application/x-www-form-urlencoded", "", 415},
		{"multipart/form-data; boundary=x", "", 415},
		{"", "", 415},
		{"application/json", "https://evil.example", 403},
		{"application/json", "https://app.example", 201},
		{"application/json; charset=utf-8", "", 201},
	} {
		req, _ := nethttp.NewRequest("POST", e.url+"/v1/topics/quotes/items", strings.NewReader(`{"id":"a","value":1}`))
		if c.ct != "" {
			req.Header.Set("Content-Type", c.ct)
		}
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("Content-Type %q from %q: %d, want %d", c.ct, c.origin, resp.StatusCode, c.status)
		}
	}
	items, _ := e.store.Items(context.Background(), "quotes", 0, 100)
	if len(items) != 2 {
		t.Errorf("%d items appended, want 2 (the accepted POSTs)", len(items))
	}
}

// TestCORS: every origin may read (no credentials); only listed origins
// may publish, with credentials.
func TestCORS(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{CORSOrigins: []string{"https://app.example"}})
	preflight := func(origin, method string) nethttp.Header {
		req, _ := nethttp.NewRequest("OPTIONS", e.url+"/v1/topics/quotes/items", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	if h := preflight("https://other.example", "GET"); h.Get("Access-Control-Allow-Origin") == "" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("read preflight from any origin: %v", h)
	}
	if h := preflight("https://other.example", "POST"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("write preflight from an unlisted origin allowed: %v", h)
	}
	if h := preflight("https://app.example", "POST"); h.Get("Access-Control-Allow-Origin") != "https://app.example" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("write preflight from the listed origin: %v", h)
	}
	req, _ := nethttp.NewRequest("GET", e.url+"/v1/topics/quotes/items", nil)
	req.Header.Set("Origin", "https://other.example")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("a read from another origin has no Access-Control-Allow-Origin: %v", resp.Header)
	}
}

// BenchmarkAuth measures what checking tokens costs, against an open node
// in the same run: ingest (one op is a POST of 100 items) and fan-out to
// 1000 streams opened with a token (one op is 10 items received by every
// stream). docs/benchmarks.md records the figures.
func BenchmarkAuth(b *testing.B) {
	keyFile := filepath.Join(b.TempDir(), "secret")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{KeyFiles: []string{keyFile}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := auth.Mint(keyFile, auth.Token{Subject: "bench", TTL: time.Hour, Rights: auth.Rights{Publish: []string{"*"}, Subscribe: []string{"*"}}})
	if err != nil {
		b.Fatal(err)
	}
	var batch strings.Builder
	batch.WriteString("[")
	for i := range 100 {
		if i > 0 {
			batch.WriteString(",")
		}
		batch.WriteString(`{"id":"quote.600519","value":{"px":1712.5,"ccy":"CNY","n":` + strconv.Itoa(i) + `}}`)
	}
	batch.WriteString("]")
	body := batch.String()
	for _, mode := range []string{"open", "tokens"} {
		cfg := Config{}
		if mode == "tokens" {
			cfg.Auth = v
		}
		b.Run("ingest/"+mode, func(b *testing.B) {
			h := hub.New(memstore.New(nil), hub.Options{})
			cfg := cfg
			cfg.Store, cfg.Hub = memstore.New(nil), h
			srv := httptest.NewServer(mustServer(b, cfg))
			defer srv.Close()
			b.ResetTimer()
			for range b.N {
				req, _ := nethttp.NewRequest("POST", srv.URL+"/v1/topics/quotes/items", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := nethttp.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
		})
		b.Run("fanout/"+mode, func(b *testing.B) {
			benchFanout(b, cfg, 1000, "access_token="+tok)
		})
	}
}
