package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/certs"
)

// issue makes a certificate for 127.0.0.1 named cn, self-signed, and
// writes it and its key to dir.
func issue(t *testing.T, dir, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	return
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func serve(t *testing.T, s *certs.Server) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// peer connects trusting roots and returns the name of the certificate
// the server showed.
func peer(addr string, roots *x509.CertPool, client *tls.Certificate) (string, error) {
	cfg := &tls.Config{RootCAs: roots}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		return "", err
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestReloadTakesTheNewCertificate: after the files change, a new
// connection gets the new certificate (on Reload, and by Watch), an open
// one carries on, and a bad file keeps the certificate in use.
func TestReloadTakesTheNewCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, c1, _ := issue(t, dir, "one", x509.ExtKeyUsageServerAuth)
	s, err := certs.New(certs.Config{CertFile: certFile, KeyFile: keyFile}, nil)
	must(t, err)
	addr := serve(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(c1)
	open, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	must(t, err)
	defer open.Close()
	if name, err := peer(addr, roots, nil); name != "one" || err != nil {
		t.Fatalf("first certificate: %q, %v", name, err)
	}

	c2File, k2File, c2, _ := issue(t, dir, "two", x509.ExtKeyUsageServerAuth)
	must(t, os.Rename(c2File, certFile))
	must(t, os.Rename(k2File, keyFile))
	roots.AddCert(c2)
	must(t, s.Reload())
	if name, err := peer(addr, roots, nil); name != "two" || err != nil {
		t.Fatalf("after the reload: %q, %v", name, err)
	}
	if _, err := open.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("a connection open before the reload broke: %v", err)
	}

	must(t, os.WriteFile(certFile, []byte("not a certificate"), 0o600))
	if err := s.Reload(); err == nil {
		t.Fatal("a bad certificate file was taken")
	}
	if name, err := peer(addr, roots, nil); name != "two" || err != nil {
		t.Fatalf("after a failed reload: %q, %v", name, err)
	}

	// Watch notices new files by their modification time.
	c3File, k3File, c3, _ := issue(t, dir, "three", x509.ExtKeyUsageServerAuth)
	roots.AddCert(c3)
	stop := make(chan struct{})
	defer close(stop)
	go s.Watch(10*time.Millisecond, stop)
	future := time.Now().Add(time.Minute)
	must(t, os.Rename(c3File, certFile))
	must(t, os.Rename(k3File, keyFile))
	must(t, os.Chtimes(certFile, future, future))
	deadline := time.Now().Add(10 * time.Second)
	for {
		name, err := peer(addr, roots, nil)
		if name == "three" && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Watch did not take the new files: %q, %v", name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, srvCert, _ := issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	caFile, _, caCert, caKey := issue(t, dir, "clients", x509.ExtKeyUsageClientAuth)
	s, err := certs.New(certs.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, RequireClientCert: true}, nil)
	must(t, err)
	addr := serve(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(srvCert)
	if _, err := peer(addr, roots, nil); err == nil {
		t.Error("a client without a certificate was served")
	}
	_, _, _, otherKey := issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth)
	selfSigned := tls.Certificate{Certificate: [][]byte{mustSelf(t, otherKey)}, PrivateKey: otherKey}
	if _, err := peer(addr, roots, &selfSigned); err == nil {
		t.Error("a client certificate of another CA was taken")
	}
	good := tls.Certificate{Certificate: [][]byte{caCert.Raw}, PrivateKey: caKey}
	if _, err := peer(addr, roots, &good); err != nil {
		t.Errorf("a client certificate of the CA: %v", err)
	}
}

func mustSelf(t *testing.T, k *ecdsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	must(t, err)
	return der
}

func TestConfigErrors(t *testing.T) {
	for name, c := range map[string]certs.Config{
		"no key":         {CertFile: "a"},
		"missing files":  {CertFile: "/nope.crt", KeyFile: "/nope.key"},
		"require, no CA": {CertFile: "a", KeyFile: "b", RequireClientCert: true},
	} {
		if _, err := certs.New(c, nil); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}
