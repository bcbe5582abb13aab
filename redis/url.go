package redis

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// Default ports and names.
const (
	DefaultPort         = 6379
	DefaultSentinelPort = 26379
	DefaultPrefix       = "baton"
	maxDB               = 1 << 16
	maxPrefixLen        = 64
)

// Config is a parsed store URL:
//
//	redis://[user:pass@]host[:port][/db][?param=value&...]
//	rediss://...                                      (TLS)
//	redis+sentinel://[user:pass@]h1[:port],h2[:port]/MASTER[/db][?...]
//	rediss+sentinel://...                             (TLS to sentinels and servers)
//	redis+cluster://[user:pass@]h1[:port],h2[:port][/][?...]   (Redis Cluster: seed nodes)
//	rediss+cluster://...                              (TLS)
//
// The user and password are percent-decoded; with Sentinel they are those of
// the data servers (sentinel_user and sentinel_password are the sentinels').
// Parameters:
//
//	prefix=NAME            key and channel namespace (default "baton")
//	dial_timeout=2s        bound on connecting (default 2s)
//	wait_replicas=N        WAIT for N replicas after lock and cursor writes
//	wait_timeout=500ms     how long WAIT may block (default 1s)
//	sentinel_user=U        (Sentinel) the sentinels' ACL user
//	sentinel_password=P    (Sentinel) the sentinels' password
//	ca_file=/path/ca.pem   (TLS) trust this CA instead of the system roots
//	skip_verify=true       (TLS) do not verify the server's certificate
//	buckets=16             (Cluster) how many buckets topics are spread over
//	                       (doc.go, "Cluster"); fixed for the life of a
//	                       deployment: Open refuses another number
type Config struct {
	TLS      bool
	Sentinel bool
	// Cluster is Redis Cluster (Addrs are seed nodes; the database is 0).
	Cluster bool
	// Buckets is the number of buckets on Redis Cluster (0: DefaultBuckets).
	Buckets int
	// Addrs are host:port: the server, or the sentinels.
	Addrs []string
	// MasterName is the Sentinel master name.
	MasterName string
	Username   string
	Password   string
	DB         int

	Prefix           string
	DialTimeout      time.Duration
	WaitReplicas     int
	WaitTimeout      time.Duration
	SentinelUsername string
	SentinelPassword string
	CAFile           string
	SkipVerify       bool
}

// Schemes are the URL schemes this engine opens.
var Schemes = []string{"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}

// Redact returns raw with every password replaced by "xxxxx", for logs,
// status and error messages. A URL that ParseURL refuses is not shown at
// all (its scheme only): its secrets cannot be told from the rest.
func Redact(raw string) string {
	c, err := ParseURL(raw)
	if err != nil {
		scheme, _, _ := strings.Cut(raw, "://")
		if !slices.Contains(Schemes, scheme) {
			scheme = "redis"
		}
		return scheme + "://(unparsable URL hidden)"
	}
	return c.Redacted()
}

func urlErr(format string, args ...any) error {
	return baton.Invalidf("store", "redis URL: "+format, args...)
}

// ParseURL parses a Redis store URL. Its errors never contain the password.
func ParseURL(raw string) (Config, error) {
	var c Config
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return c, urlErr("not a URL (want redis://HOST:PORT/DB, redis+sentinel://HOST:PORT,.../MASTER/DB or redis+cluster://HOST:PORT,...)")
	}
	switch scheme {
	case "redis":
	case "rediss":
		c.TLS = true
	case "redis+sentinel":
		c.Sentinel = true
	case "rediss+sentinel":
		c.TLS, c.Sentinel = true, true
	case "redis+cluster":
		c.Cluster = true
	case "rediss+cluster":
		c.TLS, c.Cluster = true, true
	default:
		return c, urlErr("unknown scheme %q (want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster)", scheme)
	}
	if strings.ContainsAny(rest, "#") {
		return c, urlErr("a fragment (#) is not allowed; percent-encode '#' in a password as %%23")
	}
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		if err := c.parseUserinfo(authority[:i]); err != nil {
			return c, err
		}
		authority = authority[i+1:]
	}
	if err := c.parseHosts(authority); err != nil {
		return c, err
	}
	if err := c.parsePath(path); err != nil {
		return c, err
	}
	if err := c.parseQuery(query); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Config) parseUserinfo(ui string) error {
	user, pass, hasPass := strings.Cut(ui, ":")
	var err error
	if c.Username, err = url.PathUnescape(user); err != nil {
		return urlErr("bad percent-encoding in the user name")
	}
	if c.Password, err = url.PathUnescape(pass); err != nil {
		return urlErr("bad percent-encoding in the password")
	}
	if !hasPass && c.Username != "" {
		return urlErr("user %q has no password (write user:password@ or :password@)", c.Username)
	}
	if strings.ContainsAny(c.Username, "\x00\r\n ") {
		return urlErr("the user name contains a space or control character")
	}
	if strings.ContainsAny(c.Password, "\x00\r\n") {
		return urlErr("the password contains a control character")
	}
	return nil
}

func (c *Config) parseHosts(authority string) error {
	if authority == "" {
		return urlErr("missing host")
	}
	hosts := strings.Split(authority, ",")
	if len(hosts) > 1 && !c.Sentinel && !c.Cluster {
		return urlErr("several hosts are only allowed with redis+sentinel:// or redis+cluster://")
	}
	port := DefaultPort
	if c.Sentinel {
		port = DefaultSentinelPort
	}
	for _, h := range hosts {
		addr, err := parseHostPort(h, port)
		if err != nil {
			return err
		}
		c.Addrs = append(c.Addrs, addr)
	}
	return nil
}

func parseHostPort(h string, defPort int) (string, error) {
	if h == "" {
		return "", urlErr("empty host in host list")
	}
	var host, port string
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", urlErr("host %q: missing ']'", h)
		}
		host = h[1:end]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return "", urlErr("host %q: not an IPv6 address", h)
		}
		host = a.String()
		switch rest := h[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", urlErr("host %q: unexpected %q after ']'", h, rest)
		}
	} else {
		if strings.Count(h, ":") > 1 {
			return "", urlErr("host %q: write an IPv6 address in brackets, e.g. [::1]:6379", h)
		}
		host, port, _ = strings.Cut(h, ":")
		if host == "" {
			return "", urlErr("host %q: missing host name", h)
		}
		for i := 0; i < len(host); i++ {
			b := host[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_') {
				return "", urlErr("host %q: character %q not allowed in a host name", h, b)
			}
		}
	}
	p := defPort
	if port != "" || strings.HasSuffix(h, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
			return "", urlErr("host %q: port %q is not a number from 1 to 65535", h, port)
		}
		p = n
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func (c *Config) parsePath(path string) error {
	parts := strings.Split(path, "/")
	if path == "" {
		parts = nil
	}
	if c.Sentinel {
		if len(parts) == 0 || parts[0] == "" {
			return urlErr("missing master name (redis+sentinel://HOST:PORT,.../MASTER/DB)")
		}
		m, err := url.PathUnescape(parts[0])
		if err != nil || m == "" || strings.ContainsAny(m, "\x00\r\n ") {
			return urlErr("bad master name %q", parts[0])
		}
		c.MasterName = m
		parts = parts[1:]
	}
	switch len(parts) {
	case 0:
		return nil
	case 1:
		if parts[0] == "" {
			return nil // a trailing slash
		}
		n, err := strconv.Atoi(parts[0])
		if err != nil || n < 0 || n >= maxDB || parts[0][0] == '+' || (parts[0][0] == '0' && len(parts[0]) > 1) {
			return urlErr("database %q is not a number from 0 to %d", parts[0], maxDB-1)
		}
		if c.Cluster && n != 0 {
			return urlErr("Redis Cluster has database 0 only, not %d", n)
		}
		c.DB = n
		return nil
	default:
		return urlErr("unexpected path %q (want /DB%s)", "/"+path, map[bool]string{true: " after /MASTER"}[c.Sentinel])
	}
}

func (c *Config) parseQuery(query string) error {
	if query == "" {
		return nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		// The error may quote part of the query, which may hold a password.
		return urlErr("bad query string (want key=value pairs joined by &, percent-encoded)")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return urlErr("parameter %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "prefix":
			if err := validPrefix(v); err != nil {
				return err
			}
			c.Prefix = v
		case "dial_timeout", "wait_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return urlErr("%s=%q is not a positive duration (e.g. 500ms, 2s)", k, v)
			}
			if k == "dial_timeout" {
				c.DialTimeout = d
			} else {
				c.WaitTimeout = d
			}
		case "wait_replicas":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1000 || v[0] == '+' || (v[0] == '0' && len(v) > 1) {
				return urlErr("wait_replicas=%q is not a number from 0 to 1000", v)
			}
			c.WaitReplicas = n
		case "buckets":
			if !c.Cluster {
				return urlErr("buckets is only for redis+cluster://")
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1024 || v[0] == '+' || v[0] == '0' {
				return urlErr("buckets=%q is not a number from 1 to 1024", v)
			}
			c.Buckets = n
		case "sentinel_user", "sentinel_password":
			if !c.Sentinel {
				return urlErr("%s is only for redis+sentinel://", k)
			}
			if strings.ContainsAny(v, "\x00\r\n") {
				return urlErr("%s contains a control character", k)
			}
			if k == "sentinel_user" {
				c.SentinelUsername = v
			} else {
				c.SentinelPassword = v
			}
		case "ca_file":
			if !c.TLS {
				return urlErr("ca_file is only for rediss:// (TLS)")
			}
			if v == "" || strings.ContainsAny(v, "\x00") {
				return urlErr("ca_file is empty")
			}
			c.CAFile = v
		case "skip_verify":
			if !c.TLS {
				return urlErr("skip_verify is only for rediss:// (TLS)")
			}
			b, err := strconv.ParseBool(v)
			if err != nil || v != strconv.FormatBool(b) {
				return urlErr("skip_verify=%q: want true or false", v)
			}
			c.SkipVerify = b
		default:
			return urlErr("unknown parameter %q (known: prefix, dial_timeout, wait_replicas, wait_timeout, buckets, sentinel_user, sentinel_password, ca_file, skip_verify)", k)
		}
	}
	return nil
}

// validPrefix checks a key prefix: 1 to 64 characters from [A-Za-z0-9._:-].
// It never contains a glob character, so it can be used in PSUBSCRIBE.
func validPrefix(p string) error {
	if p == "" || len(p) > maxPrefixLen {
		return baton.Invalidf("prefix", "must be 1 to %d characters", maxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		b := p[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-' || b == ':') {
			return baton.Invalidf("prefix", "character %q not allowed (use A-Z a-z 0-9 . _ - :)", b)
		}
	}
	return nil
}

// URL renders c as a URL that ParseURL reads back as c.
func (c Config) URL() string { return c.render(false) }

// Redacted is URL with the passwords replaced by "xxxxx", for logs and
// error messages.
func (c Config) Redacted() string { return c.render(true) }

func (c Config) render(redact bool) string {
	var b strings.Builder
	b.WriteString("redis")
	if c.TLS {
		b.WriteString("s")
	}
	if c.Sentinel {
		b.WriteString("+sentinel")
	}
	if c.Cluster {
		b.WriteString("+cluster")
	}
	b.WriteString("://")
	if c.Username != "" || c.Password != "" {
		pass := c.Password
		if redact && pass != "" {
			pass = "xxxxx"
		}
		b.WriteString(url.UserPassword(c.Username, pass).String())
		b.WriteString("@")
	}
	b.WriteString(strings.Join(c.Addrs, ","))
	b.WriteString("/")
	if c.Sentinel {
		b.WriteString(url.PathEscape(c.MasterName))
		b.WriteString("/")
	}
	if !c.Cluster {
		b.WriteString(strconv.Itoa(c.DB))
	}
	q := url.Values{}
	if c.Buckets > 0 {
		q.Set("buckets", strconv.Itoa(c.Buckets))
	}
	if c.Prefix != "" {
		q.Set("prefix", c.Prefix)
	}
	if c.DialTimeout > 0 {
		q.Set("dial_timeout", c.DialTimeout.String())
	}
	if c.WaitReplicas > 0 {
		q.Set("wait_replicas", strconv.Itoa(c.WaitReplicas))
	}
	if c.WaitTimeout > 0 {
		q.Set("wait_timeout", c.WaitTimeout.String())
	}
	if c.SentinelUsername != "" {
		q.Set("sentinel_user", c.SentinelUsername)
	}
	if c.SentinelPassword != "" {
		p := c.SentinelPassword
		if redact {
			p = "xxxxx"
		}
		q.Set("sentinel_password", p)
	}
	if c.CAFile != "" {
		q.Set("ca_file", c.CAFile)
	}
	if c.SkipVerify {
		q.Set("skip_verify", "true")
	}
	if len(q) > 0 {
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("?")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("&")
			}
			b.WriteString(k + "=" + url.QueryEscape(q.Get(k)))
		}
	}
	return b.String()
}

// String is Redacted.
func (c Config) String() string { return c.Redacted() }

// GoString is Redacted too, so that %#v never prints the password.
func (c Config) GoString() string { return fmt.Sprintf("redis.Config(%s)", c.Redacted()) }
