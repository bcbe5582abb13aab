package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/baton-pub/baton/wire"
)

// TLSFiles names the files of a client's TLS configuration.
type TLSFiles struct {
	// CAFile holds the PEM certificates of the CAs trusted to sign the
	// nodes' certificates ("" for the system's).
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for
	// nodes that verify sources by certificate (--tls-client-ca).
	CertFile, KeyFile string
}

// LoadTLS builds a TLS configuration from files: nil when none is named,
// so that the client keeps the default transport.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	if f.CAFile == "" && f.CertFile == "" && f.KeyFile == "" {
		return nil, nil
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("load tls: a client certificate and its key go together (--cert, --key)")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		b, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("load tls: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("load tls: %s holds no PEM certificate", f.CAFile)
		}
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// WithTLS returns a copy of hc (a new client if nil) whose transport, a
// clone, uses cfg; hc itself if cfg is nil. The transport must be an
// *http.Transport (or nil, the default one): a wrapping RoundTripper
// carries its own TLS settings. Callers making many Clients share one
// result (Options.HTTP) rather than pass Options.TLS to each, so that
// they share its connections.
func WithTLS(hc *http.Client, cfg *tls.Config) (*http.Client, error) {
	if hc == nil {
		hc = &http.Client{}
	}
	if cfg == nil {
		return hc, nil
	}
	var tr *http.Transport
	switch rt := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = rt.Clone()
	default:
		return nil, fmt.Errorf("new client: Options.TLS with a %T transport: set its TLS configuration there", rt)
	}
	tr.TLSClientConfig = cfg.Clone()
	c := *hc
	c.Transport = tr
	return &c, nil
}

// bearer is the token to send ("" for none), asking the token source for
// a first one if there is none yet.
func (c *Client) bearer(ctx context.Context) (string, error) {
	c.tokMu.Lock()
	tok := c.token
	c.tokMu.Unlock()
	if tok != "" || c.o.TokenSource == nil {
		return tok, nil
	}
	return c.refreshToken(ctx)
}

// refreshToken replaces the token by a fresh one from the token source:
// after a node refused it (401) or ended a stream with an auth event.
func (c *Client) refreshToken(ctx context.Context) (string, error) {
	if c.o.TokenSource == nil {
		return "", errors.New("refresh token: no Options.TokenSource")
	}
	tok, err := c.o.TokenSource(ctx)
	if err != nil {
		return "", fmt.Errorf("refresh token: %w", err)
	}
	c.tokMu.Lock()
	c.token = tok
	c.tokMu.Unlock()
	return tok, nil
}

// authorize puts the bearer token on req.
func (c *Client) authorize(req *http.Request) error {
	tok, err := c.bearer(req.Context())
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// refused reports whether err is a node's 401: the token is missing,
// bad or expired.
func refused(err error) bool {
	var ae *wire.Error
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

// authEnded is a stream's end by an auth event or a 401 at its start: the
// node wants a new token (atOpen: the token was refused outright).
type authEnded struct {
	err    error
	atOpen bool
}

func (e authEnded) Error() string { return e.err.Error() }
func (e authEnded) Unwrap() error { return e.err }

// untrusted reports whether err is a TLS failure that no retry mends: the
// node's certificate is not trusted (unknown CA, wrong name, expired) or
// the node refused the client's (bad, unknown or missing certificate).
func untrusted(err error) bool {
	var verr *tls.CertificateVerificationError
	var alert tls.AlertError
	var hostErr x509.HostnameError
	var caErr x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.As(err, &verr), errors.As(err, &hostErr), errors.As(err, &caErr), errors.As(err, &invalid):
		return true
	case errors.As(err, &record): // a plain HTTP server on an https:// address
		return true
	case errors.As(err, &op) && op.Op == "remote error":
		// An alert from the node: over TCP its type is not exported, and
		// every alert about certificates names one ("bad certificate",
		// "unknown certificate authority", "certificate required").
		return strings.Contains(op.Err.Error(), "certificate")
	case errors.As(err, &alert):
		// bad_certificate, unsupported_certificate, certificate_revoked,
		// certificate_expired, certificate_unknown, unknown_ca,
		// certificate_required (RFC 8446, 6.2).
		switch alert {
		case 42, 43, 44, 45, 46, 48, 116:
			return true
		}
	}
	return false
}
