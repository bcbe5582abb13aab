package dial_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/dial"
	"github.com/baton-pub/baton/redis"
)

// secretURLs are store URLs that carry a secret (the word "SECRET" and
// its parts) in every form a user may write one. None of them may show
// the secret once redacted.
var secretURLs = []string{
	"redis://:SECRET@h:6379/0",
	"redis://user:SECRET@h:6379/0",
	"rediss://user:SECRET@h:6379/0?ca_file=/ca.pem",
	"redis+sentinel://h1:26379,h2:26379/mymaster/0?sentinel_password=SECRET",
	"rediss+sentinel://:SECRET@h1:26379/mymaster/0?sentinel_user=s&sentinel_password=SECRET",
	// url.Parse refuses these; Redis's own parser takes the first.
	"redis://:SECRET^pw{1}@h:6379/0",
	"redis://:SECRET%zz@h:6379/0",
	"redis://:SECR#ET@h:6379/0",
	"redis+sentinel://h:26379/m/0?sentinel_password=SECRET&sentinel_password=SECRET",
	"redis://:SECRET@h:6379/0?unknown=1",
	"sqlite://u:SECRET@x/db.sqlite",
	"sqlite://x/%zzSECRET.db",
	"postgres://u:SECRET@h/db",
	"SECRET",
}

func TestRedactHidesEverySecret(t *testing.T) {
	for _, raw := range secretURLs {
		got := dial.Redact(raw)
		if strings.Contains(got, "SECR") {
			t.Errorf("Redact(%q) = %q: shows the secret", raw, got)
		}
	}
}

func TestRedactKeepsWhatIsNotSecret(t *testing.T) {
	for raw, want := range map[string]string{
		"sqlite:///var/lib/baton/baton.db?sync=normal":                "sqlite:///var/lib/baton/baton.db?sync=normal",
		"redis://:pw@10.0.0.5:6379/2?prefix=b":                        "redis://:xxxxx@10.0.0.5:6379/2?prefix=b",
		"rediss+sentinel://h1:26379,h2:26379/m/1?sentinel_password=p": "rediss+sentinel://h1:26379,h2:26379/m/1?sentinel_password=xxxxx",
	} {
		if got := dial.Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
	// A redacted Redis URL still parses, to the same servers.
	c, err := redis.ParseURL(dial.Redact("redis+sentinel://:pw@h1:26379,h2:26379/m/3?sentinel_password=p"))
	if err != nil || c.Password != "xxxxx" || c.SentinelPassword != "xxxxx" || len(c.Addrs) != 2 || c.DB != 3 {
		t.Errorf("redacted URL parses to %#v, %v", c, err)
	}
}

// TestOpenErrorsHideSecrets opens every secret-bearing URL, none of which
// names a reachable server, and reads the error.
func TestOpenErrorsHideSecrets(t *testing.T) {
	for _, raw := range secretURLs {
		raw = strings.Replace(raw, "@h:", "@127.0.0.1:", 1)
		raw = strings.Replace(raw, "//h1:26379,h2:26379", "//127.0.0.1:1", 1)
		raw = strings.Replace(raw, "//h1:", "//127.0.0.1:", 1)
		raw = strings.Replace(raw, "//h:26379", "//127.0.0.1:1", 1)
		raw = strings.Replace(raw, ":6379/", ":1/", 1)
		raw = strings.Replace(raw, ":26379/", ":1/", 1)
		st, err := dial.Open(context.Background(), raw, dial.Options{})
		if err == nil {
			st.Close()
			t.Errorf("Open(%q) succeeded", raw)
			continue
		}
		if strings.Contains(err.Error(), "SECR") {
			t.Errorf("Open(%q): %v: shows the secret", raw, err)
		}
	}
}

// TestEverySchemeReachesItsEngine: the schemes the engines list are the
// ones dial opens (rediss+sentinel was once refused here while the Redis
// engine took it), and an unknown one is refused by name.
func TestEverySchemeReachesItsEngine(t *testing.T) {
	want := []string{"sqlite", "redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}
	if got := dial.Schemes(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Schemes() = %v, want %v", got, want)
	}
	for _, scheme := range want[1:] {
		raw := scheme + "://127.0.0.1:1/0?dial_timeout=100ms"
		if strings.Contains(scheme, "sentinel") {
			raw = scheme + "://127.0.0.1:1/m/0?dial_timeout=100ms"
		}
		_, err := dial.Open(context.Background(), raw, dial.Options{})
		if err == nil || errors.Is(err, baton.ErrInvalid) || !dial.Transient(raw, err) {
			t.Errorf("Open(%q) = %v: want the engine's unreachable-server error, which is transient", raw, err)
		}
	}
	_, err := dial.Open(context.Background(), "mysql://h/db", dial.Options{})
	if !errors.Is(err, baton.ErrInvalid) || !strings.Contains(err.Error(), `"mysql"`) || !strings.Contains(err.Error(), "rediss+sentinel") {
		t.Errorf("unknown scheme: %v", err)
	}
	if dial.Transient("mysql://h/db", err) {
		t.Error("an unknown scheme is transient")
	}
}
