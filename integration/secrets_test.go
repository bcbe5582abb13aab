package integration

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/redistest"
)

// TestNoStoreSecretShown runs a real node on a Redis that needs a password,
// one that url.Parse refuses but Redis URLs allow, and reads everything the
// node shows: its log (debug level), its status answer and its topic list.
// The password appears in none of them.
func TestNoStoreSecretShown(t *testing.T) {
	const secret = "s3cret^pw{1}"
	r := redistest.Start(t, redistest.Options{Password: secret, KeyspaceEvents: "Ex"})
	dir := t.TempDir()
	n, err := proc.Start(context.Background(), batonBin, dir, "n1", r.URL(0), "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	for _, path := range []string{"/v1/status", "/v1/topics"} {
		resp, err := httpc.Get(n.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "s3cret") {
			t.Errorf("GET %s shows the store password: %s", path, b)
		}
		if path == "/v1/status" && !strings.Contains(string(b), "xxxxx@"+r.Addr) {
			t.Errorf("GET %s does not name the store (redacted): %s", path, b)
		}
	}
	n.Stop(testTTL)
	log, err := os.ReadFile(n.Log())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), r.Addr) {
		t.Errorf("the log never names the store:\n%s", tail(log, 2048))
	}
	if strings.Contains(string(log), "s3cret") {
		t.Errorf("the log shows the store password:\n%s", log)
	}
}

// TestStartupErrorsHideStoreSecrets starts `baton serve` and `baton ledger
// verify` on store URLs that fail (unreachable, malformed), each holding a
// secret in another form, and reads what the command prints.
func TestStartupErrorsHideStoreSecrets(t *testing.T) {
	for _, store := range []string{
		"redis://:SECRET@127.0.0.1:1/0?dial_timeout=100ms",
		"rediss+sentinel://:SECRET@127.0.0.1:1/m/0?sentinel_password=SECRET&dial_timeout=100ms",
		"redis://:SECRET%zz@127.0.0.1:1/0",
		"redis://:SEC#RET@127.0.0.1:1/0",
		"redis://:SECRET^{1}@127.0.0.1:1/0?dial_timeout=100ms",
		"sqlite://x/%zzSECRET.db",
		"mysql://u:SECRET@h/db",
	} {
		for _, args := range [][]string{
			{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--store", store},
			{"ledger", "verify", "--store", store},
		} {
			out, err := exec.Command(batonBin, args...).CombinedOutput()
			if err == nil {
				t.Errorf("baton %s: succeeded", strings.Join(args, " "))
			}
			if strings.Contains(string(out), "SEC") {
				t.Errorf("baton %s %s: shows the secret:\n%s", args[0], store, out)
			}
			if !strings.Contains(string(out), "store") {
				t.Errorf("baton %s %s: the error does not name the store:\n%s", args[0], store, out)
			}
		}
	}
}
