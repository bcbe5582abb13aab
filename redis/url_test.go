package redis

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
	}{
		{"redis://localhost", Config{Addrs: []string{"localhost:6379"}}},
		{"redis://127.0.0.1:6380/2", Config{Addrs: []string{"127.0.0.1:6380"}, DB: 2}},
		{"redis://h:1/", Config{Addrs: []string{"h:1"}}},
		{"redis://:s3cret@h/0", Config{Addrs: []string{"h:6379"}, Password: "s3cret"}},
		{"redis://baton:p%40ss%3Aw%2Fd@h:6379/1", Config{Addrs: []string{"h:6379"}, Username: "baton", Password: "p@ss:w/d", DB: 1}},
		{"redis://u:p@ss@h", Config{Addrs: []string{"h:6379"}, Username: "u", Password: "p@ss"}},
		{"redis://[::1]:7000/0", Config{Addrs: []string{"[::1]:7000"}}},
		{"redis://[::1]", Config{Addrs: []string{"[::1]:6379"}}},
		{"rediss://cache.example.com:6380/0?ca_file=/etc/ca.pem&skip_verify=false",
			Config{TLS: true, Addrs: []string{"cache.example.com:6380"}, CAFile: "/etc/ca.pem"}},
		{"redis://h/0?prefix=prod:baton&dial_timeout=500ms&wait_replicas=1&wait_timeout=250ms",
			Config{Addrs: []string{"h:6379"}, Prefix: "prod:baton", DialTimeout: 500 * time.Millisecond, WaitReplicas: 1, WaitTimeout: 250 * time.Millisecond}},
		{"redis+sentinel://s1,s2:26380,[::1]/mymaster",
			Config{Sentinel: true, Addrs: []string{"s1:26379", "s2:26380", "[::1]:26379"}, MasterName: "mymaster"}},
		{"redis+sentinel://:pw@s1:26379/my%2Dmaster/5?sentinel_password=spw&sentinel_user=su",
			Config{Sentinel: true, Addrs: []string{"s1:26379"}, MasterName: "my-master", Password: "pw", DB: 5, SentinelUsername: "su", SentinelPassword: "spw"}},
		{"rediss+sentinel://s1/m/0?skip_verify=true", Config{TLS: true, Sentinel: true, Addrs: []string{"s1:26379"}, MasterName: "m", SkipVerify: true}},
	} {
		got, err := ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseURL(%q) =\n %#v\nwant\n %#v", tc.in, got.URL(), tc.want.URL())
			t.Errorf("   %+v\n   %+v", got, tc.want)
		}
		again, err := ParseURL(got.URL())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseURL(%q).URL() = %q does not read back: %v", tc.in, got.URL(), err)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "not a URL"},
		{"localhost:6379", "not a URL"},
		{"http://h:6379/0", `unknown scheme "http"`},
		{"sqlite:///x.db", `unknown scheme "sqlite"`},
		{"redis://", "missing host"},
		{"redis:///0", "missing host"},
		{"redis://:6379/0", "missing host name"},
		{"redis://h:0/0", "port"},
		{"redis://h:65536/0", "port"},
		{"redis://h:x/0", "port"},
		{"redis://h:/0", "port"},
		{"redis://h1,h2/0", "only allowed with redis+sentinel"},
		{"redis://::1/0", "IPv6"},
		{"redis://[::1/0", "missing ']'"},
		{"redis://[1.2.3.4]/0", "not an IPv6"},
		{"redis://h o/0", "not allowed"},
		{"redis://h/x", `database "x"`},
		{"redis://h/-1", `database "-1"`},
		{"redis://h/01", `database "01"`},
		{"redis://h/0/1", "unexpected path"},
		{"redis://user@h/0", "has no password"},
		{"redis://:%zz@h/0", "percent-encoding in the password"},
		{"redis://h/0#frag", "fragment"},
		{"redis://h/0?nope=1", `unknown parameter "nope"`},
		{"redis://h/0?prefix=a*b", "prefix"},
		{"redis://h/0?prefix=", "prefix"},
		{"redis://h/0?dial_timeout=0s", "dial_timeout"},
		{"redis://h/0?wait_replicas=-1", "wait_replicas"},
		{"redis://h/0?prefix=a&prefix=b", "given 2 times"},
		{"redis://h/0?ca_file=/x", "only for rediss"},
		{"redis://h/0?sentinel_password=x", "only for redis+sentinel"},
		{"rediss://h/0?skip_verify=yes", "skip_verify"},
		{"redis+sentinel://s1:26379", "missing master name"},
		{"redis+sentinel://s1:26379/", "missing master name"},
		{"redis+sentinel://s1,,s2/m", "empty host"},
		{"redis+sentinel://s1/m/x", `database "x"`},
		{"redis://h/0?a=%zz", "bad query string"},
	} {
		_, err := ParseURL(tc.in)
		if err == nil {
			t.Errorf("ParseURL(%q) = nil error, want one containing %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %v, want it to contain %q", tc.in, err, tc.want)
		}
		if !errors.Is(err, baton.ErrInvalid) {
			t.Errorf("ParseURL(%q) = %v, want it to wrap baton.ErrInvalid", tc.in, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	c, err := ParseURL("redis+sentinel://u:topsecret@s1/m/0?sentinel_password=alsosecret")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.Redacted(), c.String(), c.GoString()} {
		if strings.Contains(s, "topsecret") || strings.Contains(s, "alsosecret") {
			t.Errorf("redacted form %q shows a password", s)
		}
	}
	if !strings.Contains(c.URL(), "topsecret") || !strings.Contains(c.URL(), "alsosecret") {
		t.Errorf("URL() %q lost a password", c.URL())
	}
	// An error about a bad URL never repeats the password.
	_, err = ParseURL("redis://u:topsecret@h:99999/0")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v shows the password", err)
	}
}

// FuzzParseURL checks that ParseURL never panics, that what it accepts reads
// back identically from its canonical form, and that the redacted form
// parses too and hides the passwords.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0",
		"rediss://u:p%40ss@h:6380/3?ca_file=/ca.pem&skip_verify=true",
		"redis+sentinel://:pw@s1:26379,s2,[::1]:26380/mymaster/1?sentinel_password=x&prefix=a:b",
		"rediss+sentinel://s1/m",
		"redis://[fe80::1%25eth0]:6379/0",
		"redis://h/0?dial_timeout=1m30s&wait_replicas=2&wait_timeout=10ms",
		"redis://h,/0", "redis://@h", "redis://:@h/", "redis+sentinel://a/%2F/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseURL(in)
		if err != nil {
			if !errors.Is(err, baton.ErrInvalid) {
				t.Fatalf("ParseURL(%q) error %v does not wrap ErrInvalid", in, err)
			}
			return
		}
		if len(c.Addrs) == 0 {
			t.Fatalf("ParseURL(%q) accepted no address", in)
		}
		if c.Sentinel != (c.MasterName != "") {
			t.Fatalf("ParseURL(%q): sentinel %v with master %q", in, c.Sentinel, c.MasterName)
		}
		again, err := ParseURL(c.URL())
		if err != nil {
			t.Fatalf("ParseURL(%q) = %#v; its URL %q does not parse: %v", in, c, c.URL(), err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("ParseURL(%q) = %+v;\nits URL %q reads back as %+v", in, c, c.URL(), again)
		}
		red, err := ParseURL(c.Redacted())
		if err != nil {
			t.Fatalf("redacted %q does not parse: %v", c.Redacted(), err)
		}
		if c.Password != "" && red.Password != "xxxxx" || c.SentinelPassword != "" && red.SentinelPassword != "xxxxx" {
			t.Fatalf("redacted %q keeps a password", c.Redacted())
		}
	})
}
