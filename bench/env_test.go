package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

// TestEnvKeepFor: the scratch directory goes at close, unless a figure
// came out far off (keepFor), which keeps it for its logs.
func TestEnvKeepFor(t *testing.T) {
	for _, keep := range []bool{false, true} {
		var logged []string
		e, err := newEnv(context.Background(), Config{Store: "sqlite"}, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
		if err != nil {
			t.Fatal(err)
		}
		if keep {
			e.keepFor("a test")
			e.keepFor("a test again")
		}
		e.close()
		_, err = os.Stat(e.dir)
		switch {
		case keep && err != nil:
			t.Fatalf("kept directory gone: %v", err)
		case !keep && !errors.Is(err, os.ErrNotExist):
			t.Fatalf("scratch directory left: %v", err)
		case keep && (len(logged) != 1 || !strings.Contains(logged[0], e.dir) || !strings.Contains(logged[0], "a test")):
			t.Fatalf("logged %q", logged)
		}
		if keep {
			os.RemoveAll(e.dir)
		}
	}
}

// TestEnvSQLiteSync: --store sqlite runs the nodes and the ceiling with
// serve's default, synchronous=FULL; sqlite?sync=normal with NORMAL (the
// closer comparison with a peer that does not fsync every write); any
// other option is refused, naming the one there is.
func TestEnvSQLiteSync(t *testing.T) {
	for store, want := range map[string]string{"sqlite": "?sync=full", "sqlite?sync=normal": "?sync=normal", "sqlite?sync=full": "?sync=full"} {
		e, err := newEnv(context.Background(), Config{Store: store}, t.Logf)
		if err != nil {
			t.Fatalf("%s: %v", store, err)
		}
		if u := e.storeURL("x"); !strings.HasPrefix(u, "sqlite://") || !strings.HasSuffix(u, "x.db"+want) {
			t.Errorf("%s: the nodes' store is %s, want a fresh file with %s", store, u, want)
		}
		e.close()
	}
	for _, store := range []string{"sqlite?sync=off", "sqlite?poll=1ms", "sqlite?sync=normal&sync=full", "sqlite?%zz"} {
		if _, err := newEnv(context.Background(), Config{Store: store}, t.Logf); err == nil || !strings.Contains(err.Error(), "sync=full or sync=normal") {
			t.Errorf("%s: %v, want a refusal naming sync=full or sync=normal", store, err)
		}
	}
}
