package bench

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestEnvTLS: with Config.TLS the scratch directory holds a certificate
// for the nodes, which the bench's transports and clients trust.
func TestEnvTLS(t *testing.T) {
	e, err := newEnv(context.Background(), Config{Store: "sqlite", TLS: true}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	if len(e.tlsArgs) != 4 || e.tlsArgs[0] != "--tls-cert" || e.tlsArgs[2] != "--tls-key" {
		t.Fatalf("node arguments %q", e.tlsArgs)
	}
	cert, err := tls.LoadX509KeyPair(e.tlsArgs[1], e.tlsArgs[3])
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	resp, err := (&http.Client{Transport: e.newTransport(1)}).Get(srv.URL)
	if err != nil {
		t.Fatalf("the bench's transport does not trust the nodes' certificate: %v", err)
	}
	resp.Body.Close()

	plain, err := newEnv(context.Background(), Config{Store: "sqlite"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.close()
	if plain.tls != nil || plain.tlsArgs != nil {
		t.Fatal("TLS without Config.TLS")
	}
}
