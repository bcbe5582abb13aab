package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestAccessFlags: status, publish and subscribe reach an https:// node
// trusting --ca-file, and send the token of --token, else --token-file,
// else BATON_TOKEN.
func TestAccessFlags(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewTLSServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"node":"n1"}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BATON_TOKEN", "from-env")
	status := func(args ...string) (string, error) {
		cmd := newStatus()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"--json", "--node", srv.URL}, args...))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ca-file", caFile}, "Bearer from-env"},
		{[]string{"--ca-file", caFile, "--token", "from-flag"}, "Bearer from-flag"},
		{[]string{"--ca-file", caFile, "--token-file", tokenFile}, "Bearer from-file"},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		if out, err := status(tc.args...); err != nil || !strings.Contains(out, `"node": "n1"`) {
			t.Fatalf("status %v: %v\n%s", tc.args, err, out)
		}
		mu.Lock()
		// Every request (the status, then its page of topics) carries it.
		if len(got) == 0 || slices.ContainsFunc(got, func(g string) bool { return g != tc.want }) {
			t.Errorf("status %v sent %q, want %q", tc.args, got, tc.want)
		}
		mu.Unlock()
	}
	if _, err := status(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("status without --ca-file: %v, want a certificate error", err)
	}
	if _, err := status("--ca-file", caFile, "--token", "a", "--token-file", tokenFile); err == nil {
		t.Error("--token with --token-file was taken")
	}
	if _, err := status("--ca-file", caFile, "--cert", caFile); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("--cert without --key: %v", err)
	}
}
