// Package dial opens a store by URL scheme. Each engine owns its schemes,
// its URL syntax and its redaction; this package only picks the engine:
//
//	sqlite:///abs/path.db, sqlite://rel/path.db           the embedded engine
//	redis://, rediss://, redis+sentinel://, rediss+sentinel://,
//	redis+cluster://, rediss+cluster://                    the Redis engine
package dial

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/sqlite"
)

// DefaultURL is the store used when none is given.
const DefaultURL = "sqlite://baton-data/baton.db"

// Options apply to every engine.
type Options struct {
	Logger *slog.Logger
}

// engine is what dial needs of a store engine.
type engine struct {
	schemes   []string
	open      func(ctx context.Context, rawURL string, o Options) (baton.Store, error)
	redact    func(rawURL string) string
	transient func(error) bool
}

var engines = []engine{
	{
		schemes: sqlite.Schemes,
		open: func(ctx context.Context, rawURL string, o Options) (baton.Store, error) {
			return sqlite.Open(ctx, rawURL, sqlite.Options{Logger: o.Logger})
		},
		redact:    sqlite.Redact,
		transient: func(err error) bool { return errors.Is(err, baton.ErrUnavailable) },
	},
	{
		schemes: redis.Schemes,
		open: func(ctx context.Context, rawURL string, o Options) (baton.Store, error) {
			return redis.Open(ctx, rawURL, redis.Options{Logger: o.Logger})
		},
		redact:    redis.Redact,
		transient: redis.Transient,
	},
}

// Schemes lists every URL scheme Open accepts.
func Schemes() []string {
	var all []string
	for _, e := range engines {
		all = append(all, e.schemes...)
	}
	return all
}

func lookup(rawURL string) (engine, string, bool) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return engine{}, "", false
	}
	for _, e := range engines {
		if slices.Contains(e.schemes, scheme) {
			return e, scheme, true
		}
	}
	return engine{}, scheme, false
}

// Open opens the store named by rawURL. Its errors never hold a password.
func Open(ctx context.Context, rawURL string, o Options) (baton.Store, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	e, scheme, ok := lookup(rawURL)
	switch {
	case ok:
		return e.open(ctx, rawURL, o)
	case scheme == "" && !strings.Contains(rawURL, "://"):
		return nil, baton.Invalidf("store", "the store is not a URL (want sqlite://PATH or redis://HOST:PORT/DB)")
	default:
		return nil, baton.Invalidf("store", "unknown scheme %q (want %s)", scheme, strings.Join(Schemes(), ", "))
	}
}

// Redact returns a store URL as it may be shown in logs, status answers
// and error messages: with every password hidden, and, when the URL cannot
// be parsed, with nothing but its scheme.
func Redact(rawURL string) string {
	if e, _, ok := lookup(rawURL); ok {
		return e.redact(rawURL)
	}
	if _, _, ok := strings.Cut(rawURL, "://"); !ok {
		return "(not a URL)"
	}
	return "(unknown scheme)"
}

// Transient reports whether an error from Open of rawURL may go away by
// itself, so that retrying makes sense: an unreachable, starting or loading
// Redis, a failover in progress, or a SQLite file that is busy. A bad URL, a
// wrong password or a server without Lua is not transient.
func Transient(rawURL string, err error) bool {
	if err == nil {
		return false
	}
	if e, _, ok := lookup(rawURL); ok {
		return e.transient(err)
	}
	return false
}
