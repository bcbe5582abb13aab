// Package certs serves a TLS certificate from files that may change: the
// certificate is read again on Reload (SIGHUP) and whenever the files'
// modification times change, without dropping open connections (each new
// handshake takes the certificate in use at that moment).
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/baton-pub/baton/internal/filewatch"
)

// Config names the files.
type Config struct {
	CertFile, KeyFile string
	// ClientCAFile, if set, makes the server ask for client certificates
	// and verify those given against these CAs. Clients without one are
	// still served (their token decides), unless RequireClientCert.
	ClientCAFile      string
	RequireClientCert bool
}

// Server holds the certificate in use.
type Server struct {
	cfg Config
	log *slog.Logger

	files *filewatch.Files

	mu   sync.RWMutex
	cert *tls.Certificate
	pool *x509.CertPool
}

// New reads the files once.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key go together")
	}
	if cfg.RequireClientCert && cfg.ClientCAFile == "" {
		return nil, errors.New("tls: requiring client certificates needs --tls-client-ca")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, files: filewatch.New(cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile)}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the certificate in use stays.
func (s *Server) Reload() error {
	s.files.Mark()
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: load certificate: %w", err)
	}
	var pool *x509.CertPool
	if s.cfg.ClientCAFile != "" {
		b, err := os.ReadFile(s.cfg.ClientCAFile)
		if err != nil {
			return fmt.Errorf("tls: read client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("tls: client CA file %s holds no PEM certificate", s.cfg.ClientCAFile)
		}
	}
	s.mu.Lock()
	s.cert, s.pool = &cert, pool
	s.mu.Unlock()
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		s.log.Info("tls certificate loaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	return nil
}

// Watch reloads the files when they change, checking every interval,
// until stop is closed. A failed reload keeps the certificate in use.
func (s *Server) Watch(interval time.Duration, stop <-chan struct{}) {
	s.files.Watch(interval, stop, s.Reload, func(err error) {
		s.log.Warn("tls certificate reload failed; keeping the one in use", "err", err)
	})
}

// TLSConfig is the listener's configuration: TLS 1.2 and later, the Go
// defaults' modern cipher suites, and the current certificate on every
// handshake.
func (s *Server) TLSConfig() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		s.mu.RLock()
		cert, pool := s.cert, s.pool
		s.mu.RUnlock()
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*cert}
		if pool != nil {
			c.ClientCAs = pool
			c.ClientAuth = tls.VerifyClientCertIfGiven
			if s.cfg.RequireClientCert {
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}
		return c, nil
	}
	return base
}
