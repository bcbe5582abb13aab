// Package auth checks the tokens of sources, terminals and operators: JSON
// Web Tokens signed with the keys of --jwt-key files, whose claims grant
// rights to publish and subscribe to topic patterns and to administer the
// node (docs/security.md).
package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/baton-pub/baton/internal/filewatch"
)

// ErrUnauthorized is a missing, malformed, badly signed, expired or
// otherwise unacceptable token. Its message never holds the token.
var ErrUnauthorized = errors.New("unauthorized")

// MaxTokenLen bounds a token: longer ones are refused unread.
const MaxTokenLen = 8 << 10

// Config says which tokens a Verifier accepts.
type Config struct {
	// KeyFiles are read at start and by Reload: HMAC secrets, PEM public
	// keys, certificates or private keys, or JWKS files. Several files let
	// keys rotate: a token verifies if any key of its algorithm (and
	// "kid", when both name one) verifies it.
	KeyFiles []string
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Verifier checks tokens against the configured keys. It is safe for
// concurrent use; Reload swaps the keys atomically.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	parser *jwt.Parser
	files  *filewatch.Files

	mu   sync.RWMutex
	keys []key
	// cache holds the grants of tokens verified with the keys in use, so
	// that a client sending the same token on every request pays the
	// signature check once; Reload empties it. Bounded by cacheSize.
	cache map[string]*Grant
	gen   uint64 // bumped by Reload: a grant verified with older keys is not cached
}

// cacheSize bounds the verified tokens remembered.
const cacheSize = 4096

// NewVerifier loads the key files. With no key file it returns nil, nil:
// the node runs open.
func NewVerifier(cfg Config, log *slog.Logger) (*Verifier, error) {
	if len(cfg.KeyFiles) == 0 {
		return nil, nil
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{cfg: cfg, log: log, files: filewatch.New(cfg.KeyFiles...)}
	if err := v.Reload(); err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithValidMethods(allAlgs),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

var allAlgs = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Reload reads every key file again. On any error the keys in use stay as
// they were.
func (v *Verifier) Reload() error {
	v.files.Mark()
	var keys []key
	for _, f := range v.cfg.KeyFiles {
		ks, err := loadKeyFile(f)
		if err != nil {
			return err
		}
		keys = append(keys, ks...)
	}
	v.mu.Lock()
	v.keys = keys
	v.cache = make(map[string]*Grant)
	v.gen++
	v.mu.Unlock()
	v.log.Info("token keys loaded", "files", len(v.cfg.KeyFiles), "keys", len(keys))
	return nil
}

// Watch reloads the key files when they change, checking every interval,
// until stop is closed. A failed reload keeps the keys in use.
func (v *Verifier) Watch(interval time.Duration, stop <-chan struct{}) {
	v.files.Watch(interval, stop, v.Reload, func(err error) {
		v.log.Error("token keys not reloaded; the ones in use stay", "err", err)
	})
}

// keyFunc picks the keys that may verify t: those whose algorithms include
// the token's, and whose kid matches when both have one.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	v.mu.RLock()
	defer v.mu.RUnlock()
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if slices.Contains(k.algs, alg) && (kid == "" || k.id == "" || k.id == kid) {
			set.Keys = append(set.Keys, k.verificationKey())
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key for alg %q", alg)
	}
	return set, nil
}

// claims are the token's registered claims and Baton's own.
type claims struct {
	jwt.RegisteredClaims
	Baton Rights `json:"baton"`
}

// Rights are what the "baton" claim grants.
type Rights struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	Admin     bool     `json:"admin,omitempty"`
}

// Grant is a verified token: who, until when, and what it allows.
type Grant struct {
	Subject   string
	Expires   time.Time
	Publish   Patterns
	Subscribe Patterns
	Admin     bool
}

// Verify checks a token and returns what it grants. Every failure wraps
// ErrUnauthorized with a reason that never quotes the token.
func (v *Verifier) Verify(token string) (*Grant, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token", ErrUnauthorized)
	}
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthorized, MaxTokenLen)
	}
	v.mu.RLock()
	g, ok := v.cache[token]
	gen := v.gen
	v.mu.RUnlock()
	if ok {
		if !v.cfg.Now().Before(g.Expires.Add(v.cfg.Leeway)) {
			return nil, fmt.Errorf("%w: token expired", ErrUnauthorized)
		}
		return g, nil
	}
	g, err := v.verify(token)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen != gen {
		return g, nil
	}
	if len(v.cache) >= cacheSize {
		for t := range v.cache { // map order is random: a random half goes
			if len(v.cache) < cacheSize/2 {
				break
			}
			delete(v.cache, t)
		}
	}
	v.cache[token] = g
	return g, nil
}

// verify checks a token's signature and claims.
func (v *Verifier) verify(token string) (*Grant, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFunc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnauthorized, reason(err))
	}
	g := &Grant{Subject: c.Subject, Admin: c.Baton.Admin}
	if c.ExpiresAt != nil {
		g.Expires = c.ExpiresAt.Time
	}
	var err error
	if g.Publish, err = ParsePatterns(c.Baton.Publish); err != nil {
		return nil, fmt.Errorf("%w: baton.publish: %v", ErrUnauthorized, err)
	}
	if g.Subscribe, err = ParsePatterns(c.Baton.Subscribe); err != nil {
		return nil, fmt.Errorf("%w: baton.subscribe: %v", ErrUnauthorized, err)
	}
	return g, nil
}

// reason names why golang-jwt refused a token, in words that hold none of
// the token's text.
func reason(err error) string {
	for _, r := range []struct {
		err  error
		what string
	}{
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenUnverifiable, "no key can verify the token (algorithm or key id)"},
		{jwt.ErrTokenSignatureInvalid, "bad signature"},
		{jwt.ErrTokenRequiredClaimMissing, "the token has no exp"},
		{jwt.ErrTokenExpired, "token expired"},
		{jwt.ErrTokenNotValidYet, "token not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "token issued in the future"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenInvalidClaims, "invalid claims"},
	} {
		if errors.Is(err, r.err) {
			return r.what
		}
	}
	return "invalid token"
}

// Right is one of the three rights a token may grant.
type Right int

const (
	Publish Right = iota + 1
	Subscribe
	Admin
)

func (r Right) String() string {
	switch r {
	case Publish:
		return "publish"
	case Subscribe:
		return "subscribe"
	case Admin:
		return "admin"
	}
	return "none"
}

// Can reports whether g grants right r on topic (ignored for Admin). The
// rights are independent: admin grants no topic, and a topic pattern no
// admin route.
func (g *Grant) Can(r Right, topic string) bool {
	if g == nil {
		return false
	}
	switch r {
	case Admin:
		return g.Admin
	case Publish:
		return g.Publish.Match(topic)
	case Subscribe:
		return g.Subscribe.Match(topic)
	}
	return false
}

// ExpiresIn is how long the grant remains valid at now.
func (g *Grant) ExpiresIn(now time.Time) time.Duration { return g.Expires.Sub(now) }
