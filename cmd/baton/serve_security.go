package main

import (
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/internal/certs"
	"github.com/baton-pub/baton/internal/limits"
)

// securityConfig is what `baton serve` exposes and to whom: tokens, TLS,
// browsers' origins, per-client limits (docs/security.md).
type securityConfig struct {
	JWTKeys      []string
	JWTIssuer    string
	JWTAudience  string
	PublicLedger bool
	CORSOrigins  []string
	TLSCert      string
	TLSKey       string
	TLSClientCA  string
	// TLSRequireClientCert refuses, at the handshake, clients without a
	// certificate of TLSClientCA (sources only, no browsers).
	TLSRequireClientCert bool
	// ClientRate is each client's sustained requests per second, with
	// ClientBurst at once; ClientStreams its event streams at once.
	ClientRate    float64
	ClientBurst   int
	ClientStreams int
	MaxStreams    int
}

func (c *securityConfig) flags(f *pflag.FlagSet) {
	f.StringArrayVar(&c.JWTKeys, "jwt-key", envList("BATON_JWT_KEY"), "verify access tokens with the keys of this file: HMAC secret, PEM public key or certificate, or JWKS (repeatable, for rotation; none: the node is open to anyone)")
	f.StringVar(&c.JWTIssuer, "jwt-issuer", envOr("BATON_JWT_ISSUER", ""), "tokens must have this iss")
	f.StringVar(&c.JWTAudience, "jwt-audience", envOr("BATON_JWT_AUDIENCE", ""), "tokens must have this aud")
	f.BoolVar(&c.PublicLedger, "public-ledger", envOr("BATON_PUBLIC_LEDGER", "false") == "true", "serve the ledger's checkpoints and proofs to anyone, even with --jwt-key")
	f.StringSliceVar(&c.CORSOrigins, "cors-origins", envList("BATON_CORS_ORIGINS"), "origins of web pages that may publish and send cookies, comma separated (* for every origin, without cookies); every origin may read")
	f.StringVar(&c.TLSCert, "tls-cert", envOr("BATON_TLS_CERT", ""), "serve HTTPS with this certificate (PEM; reloaded on change or SIGHUP)")
	f.StringVar(&c.TLSKey, "tls-key", envOr("BATON_TLS_KEY", ""), "the certificate's private key (PEM)")
	f.StringVar(&c.TLSClientCA, "tls-client-ca", envOr("BATON_TLS_CLIENT_CA", ""), "ask for client certificates and verify them against these CAs (PEM)")
	f.BoolVar(&c.TLSRequireClientCert, "tls-require-client-cert", envOr("BATON_TLS_REQUIRE_CLIENT_CERT", "false") == "true", "refuse clients without a certificate of --tls-client-ca at the handshake (default: they are served, their token decides)")
	f.Float64Var(&c.ClientRate, "client-rate", envFloat("BATON_CLIENT_RATE", 0), "requests per second one client (token subject, else address) may make (0: no limit)")
	f.IntVar(&c.ClientBurst, "client-burst", int(envInt("BATON_CLIENT_BURST", 0)), "requests one client may make at once (default: --client-rate)")
	f.IntVar(&c.ClientStreams, "client-streams", int(envInt("BATON_CLIENT_STREAMS", 0)), "event streams one client may hold at once (0: no limit)")
	f.IntVar(&c.MaxStreams, "max-streams", int(envInt("BATON_MAX_STREAMS", 0)), "event streams this node holds at once (default: 100000, lowered to fit the open-file limit)")
}

func (c *securityConfig) validate() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return baton.Invalidf("--tls-cert", "--tls-cert and --tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return baton.Invalidf("--tls-client-ca", "needs --tls-cert and --tls-key")
	}
	if c.TLSRequireClientCert && c.TLSClientCA == "" {
		return baton.Invalidf("--tls-require-client-cert", "needs --tls-client-ca")
	}
	for _, o := range c.CORSOrigins {
		if o != "*" && !(strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://")) || strings.HasSuffix(o, "/") {
			return baton.Invalidf("--cors-origins", "%q: want an origin such as https://app.example.com (scheme and host, no path) or *", o)
		}
	}
	if (c.JWTIssuer != "" || c.JWTAudience != "") && len(c.JWTKeys) == 0 {
		return baton.Invalidf("--jwt-issuer", "needs --jwt-key")
	}
	if c.ClientRate < 0 || c.ClientBurst < 0 || c.ClientStreams < 0 || c.MaxStreams < 0 {
		return baton.Invalidf("--client-rate", "limits must not be negative")
	}
	return nil
}

// security is what a node runs with, built from the configuration.
type security struct {
	verifier *auth.Verifier // nil: open
	certs    *certs.Server  // nil: plain HTTP
}

func (c *securityConfig) build(log *slog.Logger) (*security, error) {
	var s security
	var err error
	s.verifier, err = auth.NewVerifier(auth.Config{KeyFiles: c.JWTKeys, Issuer: c.JWTIssuer, Audience: c.JWTAudience}, log)
	if err != nil {
		return nil, err
	}
	if s.verifier == nil {
		log.Warn("no --jwt-key: the node is open, anyone who reaches it may publish, subscribe and read its status (docs/security.md)")
	}
	if c.TLSCert != "" {
		if s.certs, err = certs.New(certs.Config{CertFile: c.TLSCert, KeyFile: c.TLSKey, ClientCAFile: c.TLSClientCA, RequireClientCert: c.TLSRequireClientCert}, log); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// apply puts the security settings in the API's configuration.
func (c *securityConfig) apply(s *security, cfg *bhttp.Config) {
	cfg.Auth = s.verifier
	cfg.PublicLedger = c.PublicLedger
	cfg.CORSOrigins = c.CORSOrigins
	cfg.Limits = limits.Config{Rate: c.ClientRate, Burst: c.ClientBurst, Streams: c.ClientStreams}
	cfg.MaxStreams = c.MaxStreams
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = streamsWithinFileLimit(bhttp.DefaultMaxStreams)
	}
}

// listener wraps ln in TLS when the node serves HTTPS.
func (s *security) listener(ln net.Listener) net.Listener {
	if s.certs == nil {
		return ln
	}
	return tls.NewListener(ln, s.certs.TLSConfig())
}

// reloadOnHUP reloads the token keys and the certificate on SIGHUP, and
// either when its files change, until stop is closed.
func (s *security) reloadOnHUP(log *slog.Logger, stop <-chan struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if s.certs != nil {
		go s.certs.Watch(5*time.Second, stop)
	}
	if s.verifier != nil {
		go s.verifier.Watch(5*time.Second, stop)
	}
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				log.Info("SIGHUP: reloading keys and certificate")
				if s.verifier != nil {
					if err := s.verifier.Reload(); err != nil {
						log.Error("token keys not reloaded; the ones in use stay", "err", err)
					}
				}
				if s.certs != nil {
					if err := s.certs.Reload(); err != nil {
						log.Error("certificate not reloaded; the one in use stays", "err", err)
					}
				}
			}
		}
	}()
}

// streamsWithinFileLimit bounds the streams so that they leave a quarter
// of the open-file limit (and at least 256 descriptors) to the store, the
// ledger and new requests: at the limit, accept fails and nothing answers,
// while a refused stream gets a clean 503.
func streamsWithinFileLimit(def int) int {
	cur, ok := openFileLimit()
	if !ok || cur == 0 || cur > uint64(4*def) {
		return def
	}
	n := int(cur) - max(int(cur)/4, 256)
	return max(16, min(def, n))
}

func envList(key string) []string {
	if v := os.Getenv(key); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func envFloat(key string, def float64) float64 {
	if v := os.Getenv(key); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func accessOf(s *security) string {
	if s.verifier == nil {
		return baton.AccessOpen
	}
	return baton.AccessTokens
}
