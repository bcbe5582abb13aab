package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// minSecret is the shortest HMAC secret taken: 256 bits, as RFC 7518
// section 3.2 requires for HS256.
const minSecret = 32

// maxKeyFile bounds what a key file may hold.
const maxKeyFile = 1 << 20

// key is one verification (and, for a private key, signing) key.
type key struct {
	// id is the key's "kid" (JWKS only); empty matches any token.
	id string
	// algs are the only algorithms this key verifies: fixed by its type
	// (and curve), or by the JWK's "alg", so that a token cannot pick an
	// algorithm of another family (no HS256 signed with an RSA public key,
	// no "none").
	algs   []string
	verify crypto.PublicKey // []byte for HMAC
	sign   crypto.Signer    // nil unless the file held a private key
	secret []byte           // HMAC only
	file   string
}

// algsOf lists the algorithms a key of this type may verify.
func algsOf(pub any) ([]string, error) {
	switch k := pub.(type) {
	case []byte:
		return []string{"HS256", "HS384", "HS512"}, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: want 2048 or more", k.N.BitLen())
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, errors.New("ECDSA key on an unsupported curve (want P-256, P-384 or P-521)")
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", pub)
}

// loadKeyFile reads the keys of one file: a JWKS (or one JWK), PEM blocks
// (public keys, certificates or private keys), or else an HMAC secret (the
// file's bytes, a trailing newline dropped).
func loadKeyFile(path string) ([]key, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var keys []key
	switch t := bytes.TrimSpace(b); {
	case bytes.HasPrefix(t, []byte("{")):
		keys, err = parseJWKS(t)
	case bytes.HasPrefix(t, []byte("-----BEGIN")):
		keys, err = parsePEM(t)
	default:
		secret := bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		if len(secret) < minSecret {
			return nil, fmt.Errorf("key file %s: an HMAC secret of %d bytes: want %d or more", path, len(secret), minSecret)
		}
		keys = []key{{algs: []string{"HS256", "HS384", "HS512"}, secret: secret}}
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file %s: holds no key", path)
	}
	for i := range keys {
		keys[i].file = path
	}
	return keys, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
}

func newKey(id string, pub any, sign crypto.Signer) (key, error) {
	algs, err := algsOf(pub)
	if err != nil {
		return key{}, err
	}
	return key{id: id, algs: algs, verify: pub, sign: sign}, nil
}

func parsePEM(b []byte) ([]key, error) {
	var keys []key
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var pub any
		var sign crypto.Signer
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				pub = c.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			sign, err = parsePrivate(blk)
			if err == nil {
				pub = sign.Public()
			}
		default:
			return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY, CERTIFICATE or PRIVATE KEY", blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %w", blk.Type, err)
		}
		k, err := newKey("", pub, sign)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return nil, errors.New("text after the last PEM block is not PEM")
	}
	return keys, nil
}

func parsePrivate(blk *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return s, nil
}

// parseJWKS reads a JWK Set, or one JWK. Private members are ignored: a
// JWKS gives verification keys only (an "oct" key is an HMAC secret).
func parseJWKS(b []byte) ([]key, error) {
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var keys []key
	for i := range set.Len() {
		jk, _ := set.Key(i)
		if use, ok := jk.KeyUsage(); ok && use != "" && use != "sig" {
			continue
		}
		id, _ := jk.KeyID()
		var raw any
		if err := jwk.Export(jk, &raw); err != nil {
			return nil, fmt.Errorf("JWK %d (%q): %w", i, id, err)
		}
		var k key
		switch r := raw.(type) {
		case []byte:
			if len(r) < minSecret {
				return nil, fmt.Errorf("JWK %d (%q): an HMAC secret of %d bytes: want %d or more", i, id, len(r), minSecret)
			}
			k = key{id: id, algs: []string{"HS256", "HS384", "HS512"}, secret: r}
		case crypto.Signer:
			k, err = newKey(id, r.Public(), nil)
		default:
			k, err = newKey(id, r, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("JWK %d (%q): %w", i, id, err)
		}
		if alg, ok := jk.Algorithm(); ok && alg.String() != "" {
			if !slices.Contains(k.algs, alg.String()) {
				return nil, fmt.Errorf("JWK %d (%q): alg %q does not fit its key type", i, id, alg)
			}
			k.algs = []string{alg.String()}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// verificationKey is what golang-jwt verifies with.
func (k key) verificationKey() jwt.VerificationKey {
	if k.secret != nil {
		return k.secret
	}
	return k.verify
}
