// Package dial opens a store by URL scheme:
//
//	sqlite:///abs/path.db, sqlite://rel/path.db  the embedded engine
//	redis://, rediss://, redis+sentinel://       the Redis engine
package dial

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// DefaultURL is the store used when none is given.
const DefaultURL = "sqlite://baton-data/baton.db"

// Options apply to every engine.
type Options struct {
	Logger *slog.Logger
}

// Open opens the store named by rawURL.
func Open(ctx context.Context, rawURL string, o Options) (baton.Store, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, baton.Invalidf("store", "%q is not a URL (want sqlite://PATH or redis://HOST:PORT/DB)", Redact(rawURL))
	}
	switch scheme {
	case "sqlite":
		return sqlite.Open(ctx, rawURL, sqlite.Options{Logger: o.Logger})
	case "redis", "rediss", "redis+sentinel":
		return openRedis(ctx, rawURL, o)
	default:
		return nil, baton.Invalidf("store", "unknown scheme %q (want sqlite, redis, rediss or redis+sentinel)", scheme)
	}
}

// Redact hides the password of a store URL, for logs and status.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Transient reports whether an error from Open of rawURL may go away by
// itself, so that retrying makes sense: an unreachable, starting or loading
// Redis, a failover in progress, or a SQLite file that is busy. A bad URL, a
// wrong password or a server without Lua is not transient.
func Transient(rawURL string, err error) bool {
	if err == nil {
		return false
	}
	if strings.HasPrefix(rawURL, "redis") {
		return redisTransient(err)
	}
	return errors.Is(err, baton.ErrUnavailable)
}
