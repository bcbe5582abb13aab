package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/internal/poll"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func now() time.Time { return t0 }

func write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemFile(t *testing.T, typ string, der []byte) string {
	return write(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func privateFile(t *testing.T, k any) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemFile(t, "PRIVATE KEY", der)
}

func publicFile(t *testing.T, k any) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemFile(t, "PUBLIC KEY", der)
}

func verifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	cfg.Now = now
	v, err := auth.NewVerifier(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mint(t *testing.T, keyFile string, tok auth.Token) string {
	t.Helper()
	if tok.TTL == 0 {
		tok.TTL = time.Hour
	}
	if tok.Now == nil {
		tok.Now = now
	}
	s, err := auth.Mint(keyFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sign makes a token by hand, for what Mint refuses to make.
func sign(t *testing.T, m jwt.SigningMethod, k any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var secret = []byte("0123456789abcdef0123456789abcdef")

// TestEveryKeyTypeSignsAndVerifies: a token minted with each kind of
// private key verifies against its public half, and grants what it says.
func TestEveryKeyTypeSignsAndVerifies(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, pair := range map[string][2]string{
		"HS256":  {write(t, "s", append(secret, '\n')), write(t, "s", secret)},
		"RS256":  {privateFile(t, rsaKey), publicFile(t, &rsaKey.PublicKey)},
		"ES256":  {privateFile(t, p256), publicFile(t, &p256.PublicKey)},
		"ES384":  {privateFile(t, p384), publicFile(t, &p384.PublicKey)},
		"EdDSA":  {privateFile(t, edKey), publicFile(t, edPub)},
		"PKCS1":  {pemFile(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), pemFile(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey))},
		"EC SEC": {ecFile(t, p256), publicFile(t, &p256.PublicKey)},
	} {
		tok := mint(t, pair[0], auth.Token{Subject: "src-1", Rights: auth.Rights{Publish: []string{"quotes.*"}, Subscribe: []string{"*"}}})
		g, err := verifier(t, auth.Config{KeyFiles: []string{pair[1]}}).Verify(tok)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if g.Subject != "src-1" || !g.Can(auth.Publish, "quotes.a") || g.Can(auth.Publish, "news") || !g.Can(auth.Subscribe, "news") || g.Can(auth.Admin, "") || !g.Expires.Equal(t0.Add(time.Hour)) {
			t.Errorf("%s: grant %+v", name, g)
		}
	}
}

func ecFile(t *testing.T, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemFile(t, "EC PRIVATE KEY", der)
}

// TestRefusedTokens is the matrix of tokens a node must refuse, each for
// its reason.
func TestRefusedTokens(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	secretFile := write(t, "s", secret)
	rsaFile := write(t, "rsa.pem", rsaPubPEM)
	ecFile := publicFile(t, &p256.PublicKey)
	v := verifier(t, auth.Config{KeyFiles: []string{secretFile, rsaFile, ecFile}, Issuer: "https://idp", Audience: "baton"})
	good := jwt.MapClaims{"iss": "https://idp", "aud": "baton", "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix()}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	other := []byte("another secret, 32 bytes or more!!")
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	ok := sign(t, jwt.SigningMethodHS256, secret, good)
	if _, err := v.Verify(ok); err != nil {
		t.Fatalf("the control token is refused: %v", err)
	}
	for name, tok := range map[string]string{
		"empty":        "",
		"garbage":      "not.a.token",
		"too long":     strings.Repeat("a", auth.MaxTokenLen+1),
		"alg none":     noneTok,
		"wrong secret": sign(t, jwt.SigningMethodHS256, other, good),
		"HS256 with the RSA public key as secret (alg confusion)": sign(t, jwt.SigningMethodHS256, rsaPubPEM, good),
		"ES384 header on a P-256 key":                             sign(t, jwt.SigningMethodES384, mustEC(t), good),
		"expired":                                                 sign(t, jwt.SigningMethodHS256, secret, with("exp", t0.Add(-time.Minute).Unix())),
		"no exp":                                                  sign(t, jwt.SigningMethodHS256, secret, with("exp", nil)),
		"not valid yet":                                           sign(t, jwt.SigningMethodHS256, secret, with("nbf", t0.Add(time.Hour).Unix())),
		"issued in the future":                                    sign(t, jwt.SigningMethodHS256, secret, with("iat", t0.Add(time.Hour).Unix())),
		"wrong issuer":                                            sign(t, jwt.SigningMethodHS256, secret, with("iss", "https://evil")),
		"no issuer":                                               sign(t, jwt.SigningMethodHS256, secret, with("iss", nil)),
		"wrong audience":                                          sign(t, jwt.SigningMethodHS256, secret, with("aud", "other")),
		"bad pattern":                                             sign(t, jwt.SigningMethodHS256, secret, with("baton", map[string]any{"publish": []string{"a*"}})),
		"rights of a wrong type":                                  sign(t, jwt.SigningMethodHS256, secret, with("baton", map[string]any{"publish": "quotes"})),
		"signature cut":                                           ok[:len(ok)-4],
	} {
		g, err := v.Verify(tok)
		if !errors.Is(err, auth.ErrUnauthorized) || g != nil {
			t.Errorf("%s: got %+v, %v: want ErrUnauthorized", name, g, err)
			continue
		}
		if len(tok) > 20 && strings.Contains(err.Error(), tok[len(tok)-20:]) {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
	// Within the leeway, an expired token still passes.
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, with("exp", t0.Add(-10*time.Second).Unix()))); err != nil {
		t.Errorf("10 s past exp (leeway 30 s): %v", err)
	}
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestJWKS: keys come from a JWK Set, matched by kid, and a key's "alg"
// pins it.
func TestJWKS(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	jwks, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "one", "alg": "ES256", "x": b64(k1.X), "y": b64(k1.Y)},
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "two", "x": b64(k2.X), "y": b64(k2.Y)},
		map[string]any{"kty": "oct", "kid": "enc", "use": "enc", "k": base64.RawURLEncoding.EncodeToString(secret)},
	}})
	v := verifier(t, auth.Config{KeyFiles: []string{write(t, "jwks.json", jwks)}})
	claims := jwt.MapClaims{"exp": t0.Add(time.Hour).Unix()}
	signKid := func(kid string, k *ecdsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, c := range map[string]struct {
		tok string
		ok  bool
	}{
		"kid one":               {signKid("one", k1), true},
		"kid two":               {signKid("two", k2), true},
		"no kid":                {signKid("", k2), true},
		"kid one, key two":      {signKid("one", k2), false},
		"unknown kid":           {signKid("three", k1), false},
		"the enc key is no sig": {sign(t, jwt.SigningMethodHS256, secret, claims), false},
	} {
		_, err := v.Verify(c.tok)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", name, err, c.ok)
		}
	}
	bad, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "alg": "RS256", "x": b64(k1.X), "y": b64(k1.Y)}}})
	if _, err := auth.NewVerifier(auth.Config{KeyFiles: []string{write(t, "bad.json", bad)}}, nil); err == nil {
		t.Error("a JWK whose alg does not fit its key type is taken")
	}
}

// TestReloadRotatesKeys: a reload takes the files' new keys at once, and a
// reload that fails keeps the keys in use.
func TestReloadRotatesKeys(t *testing.T) {
	f := write(t, "s", secret)
	v := verifier(t, auth.Config{KeyFiles: []string{f}})
	old := mint(t, f, auth.Token{})
	next := []byte("the next secret, 32 bytes or more..")
	if err := os.WriteFile(f, next, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(old); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	if err := v.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(old); err == nil {
		t.Error("the old key still verifies after the reload")
	}
	newTok := mint(t, f, auth.Token{})
	if err := os.WriteFile(f, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.Reload(); err == nil {
		t.Error("a 5-byte secret is taken")
	}
	if _, err := v.Verify(newTok); err != nil {
		t.Errorf("a failed reload dropped the keys in use: %v", err)
	}
}

func TestBadKeyFiles(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, f := range map[string]string{
		"missing":       filepath.Join(t.TempDir(), "nope"),
		"short secret":  write(t, "s", []byte("0123456789")),
		"empty":         write(t, "s", nil),
		"RSA 1024":      publicFile(t, &small.PublicKey),
		"bad PEM":       write(t, "k.pem", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")),
		"unknown block": pemFile(t, "SOMETHING", []byte{1}),
		"bad JSON":      write(t, "k.json", []byte("{")),
		"too large":     write(t, "s", make([]byte, 2<<20)),
	} {
		if _, err := auth.NewVerifier(auth.Config{KeyFiles: []string{f}}, nil); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	if v, err := auth.NewVerifier(auth.Config{}, nil); v != nil || err != nil {
		t.Errorf("no key file: %v, %v; want an open node (nil, nil)", v, err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := auth.Mint(publicFile(t, &p256.PublicKey), auth.Token{TTL: time.Hour}); err == nil {
		t.Error("minted with a public key")
	}
	if _, err := auth.Mint(write(t, "s", secret), auth.Token{TTL: time.Hour, Rights: auth.Rights{Subscribe: []string{"bad pattern"}}}); err == nil {
		t.Error("minted a token with a bad pattern")
	}
}

func TestPatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, topic string
		match          bool
	}{
		{"*", "anything", true},
		{"quotes", "quotes", true},
		{"quotes", "quotes.a", false},
		{"quotes.*", "quotes.a", true},
		{"quotes.*", "quotes.a.b", true},
		{"quotes.*", "quotes", false},
		{"quotes.*", "quotes.", false},
		{"quotes.*", "quotesx", false},
		{"a.b.*", "a.b.c", true},
		{"a.b.*", "a.bc", false},
	} {
		p, err := auth.ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if p.Match(c.topic) != c.match {
			t.Errorf("%q matches %q: %v, want %v", c.pattern, c.topic, !c.match, c.match)
		}
	}
	for _, bad := range []string{"", "a*", "*.a", "a.**", ".*", "a b", "a.*.*", "-a", strings.Repeat("a", 128) + ".*", "quotes.*x"} {
		if _, err := auth.ParsePattern(bad); err == nil {
			t.Errorf("pattern %q taken", bad)
		}
	}
}

func TestTokenFrom(t *testing.T) {
	for _, c := range []struct {
		name, header, cookie, query string
		token, from                 string
		ok                          bool
	}{
		{name: "none", ok: true},
		{name: "header", header: "Bearer T1", token: "T1", from: "header", ok: true},
		{name: "header, any case", header: "bearer T1", token: "T1", from: "header", ok: true},
		{name: "cookie", cookie: "T2", token: "T2", from: "cookie", ok: true},
		{name: "query", query: "access_token=T3", token: "T3", from: "query", ok: true},
		{name: "same in two places", header: "Bearer T1", cookie: "T1", token: "T1", from: "header", ok: true},
		{name: "two different", header: "Bearer T1", cookie: "T2", from: "header+cookie"},
		{name: "basic auth", header: "Basic dXNlcjpwdw==", from: "header"},
		{name: "query twice", query: "access_token=a&access_token=b", from: "query"},
	} {
		r := httptest.NewRequest("GET", "/v1/topics/a/events?"+c.query, nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if c.cookie != "" {
			r.Header.Set("Cookie", auth.CookieName+"="+c.cookie)
		}
		tok, from, ok := auth.TokenFrom(r)
		if tok != c.token || from != c.from || ok != c.ok {
			t.Errorf("%s: %q %q %v, want %q %q %v", c.name, tok, from, ok, c.token, c.from, c.ok)
		}
	}
}

// FuzzVerify: no input panics the verifier, and none is accepted without
// the key (the fuzzer cannot forge an HMAC).
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	kf := filepath.Join(dir, "s")
	if err := os.WriteFile(kf, secret, 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{KeyFiles: []string{kf}, Now: now}, nil)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := auth.Mint(kf, auth.Token{TTL: time.Hour, Now: now, Rights: auth.Rights{Publish: []string{"a.*"}}})
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOjk5OTk5OTk5OTl9.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := v.Verify(tok)
		if tok == good {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if err == nil {
			// Only the token's own bytes re-encoded can pass.
			if g.Can(auth.Publish, "a.x") && strings.Count(tok, ".") == 2 {
				return
			}
			t.Fatalf("accepted %q: %+v", tok, g)
		}
	})
}

// FuzzPattern: a pattern taken matches what its definition says.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"*", "quotes", "quotes.*", "a.b.*", "a*"} {
		f.Add(s, "quotes.a")
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := auth.ParsePattern(pattern)
		if err != nil {
			return
		}
		var want bool
		switch prefix, wild := strings.CutSuffix(pattern, "*"); {
		case pattern == "*":
			want = true
		case wild:
			want = strings.HasPrefix(topic, prefix) && len(topic) > len(prefix)
		default:
			want = topic == pattern
		}
		if p.Match(topic) != want {
			t.Fatalf("%q matches %q: %v", pattern, topic, !want)
		}
	})
}

// TestCachedGrantExpires: a token verified once is remembered, but not
// past its exp (plus the leeway).
func TestCachedGrantExpires(t *testing.T) {
	f := write(t, "s", secret)
	clock := t0
	v, err := auth.NewVerifier(auth.Config{KeyFiles: []string{f}, Now: func() time.Time { return clock }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, f, auth.Token{TTL: time.Minute})
	for range 2 {
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	clock = t0.Add(time.Minute + 29*time.Second)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	clock = t0.Add(time.Minute + 31*time.Second)
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("past exp and leeway, from the cache: %v", err)
	}
}

// TestWatchTakesNewKeys: replacing a key file is enough, no SIGHUP.
func TestWatchTakesNewKeys(t *testing.T) {
	f := write(t, "s", secret)
	v, err := auth.NewVerifier(auth.Config{KeyFiles: []string{f}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := auth.Mint(f, auth.Token{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go v.Watch(5*time.Millisecond, stop)
	if err := os.WriteFile(f, []byte("the next secret, 32 bytes or more.."), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(f, future, future); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the old key to be dropped", func() bool {
		_, err := v.Verify(old)
		return err != nil
	})
}
