package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token is what Mint puts in a token.
type Token struct {
	Subject  string
	Issuer   string
	Audience string
	TTL      time.Duration
	Rights   Rights
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Mint signs a token with the first key of keyFile, which must be able to
// sign: an HMAC secret (HS256) or a PEM private key (RS256, ES256/384/512
// by curve, EdDSA).
func Mint(keyFile string, t Token) (string, error) {
	if t.TTL <= 0 {
		return "", errors.New("mint token: the TTL must be positive")
	}
	for _, list := range [][]string{t.Rights.Publish, t.Rights.Subscribe} {
		if _, err := ParsePatterns(list); err != nil {
			return "", fmt.Errorf("mint token: %w", err)
		}
	}
	keys, err := loadKeyFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	k := keys[0]
	var method jwt.SigningMethod
	var signKey any
	switch {
	case k.secret != nil:
		method, signKey = jwt.SigningMethodHS256, k.secret
	case k.sign != nil:
		method, signKey = signingMethod(k.sign), k.sign
	default:
		return "", fmt.Errorf("mint token: %s holds a public key, which cannot sign (give the private key or the HMAC secret)", keyFile)
	}
	if method == nil {
		return "", fmt.Errorf("mint token: %s: unsupported private key", keyFile)
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	n := now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   t.Subject,
			Issuer:    t.Issuer,
			IssuedAt:  jwt.NewNumericDate(n),
			NotBefore: jwt.NewNumericDate(n),
			ExpiresAt: jwt.NewNumericDate(n.Add(t.TTL)),
		},
		Baton: t.Rights,
	}
	if t.Audience != "" {
		c.Audience = jwt.ClaimStrings{t.Audience}
	}
	s, err := jwt.NewWithClaims(method, c).SignedString(signKey)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}

func signingMethod(s crypto.Signer) jwt.SigningMethod {
	switch k := s.(type) {
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256
		case elliptic.P384():
			return jwt.SigningMethodES384
		case elliptic.P521():
			return jwt.SigningMethodES512
		}
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA
	}
	return nil
}
