package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// openErr opens url expecting an error, and checks that it came within
// limit, wraps want, names the problem (contains every part of says) and
// shows no password.
func openErr(t *testing.T, url string, opts redis.Options, limit time.Duration, want error, says ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := redis.Open(ctx, url, opts)
	took := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatalf("Open(%s) succeeded, want an error", url)
	}
	t.Logf("Open(%s) after %v: %v", url, took.Round(time.Millisecond), err)
	if took > limit {
		t.Errorf("Open took %v, want at most %v", took, limit)
	}
	if !errors.Is(err, want) {
		t.Errorf("error does not wrap %v", want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q", s)
		}
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrongpw") {
		t.Errorf("error shows a password")
	}
	if n := strings.Count(err.Error(), "open redis store"); n > 1 {
		t.Errorf("error names the open step %d times, want one clear error", n)
	}
	return err
}

// transient checks redis.Transient, which `baton serve --store-wait` uses to
// retry only what may go away by itself.
func transient(t *testing.T, err error, want bool) {
	t.Helper()
	if got := redis.Transient(err); got != want {
		t.Errorf("Transient(%v) = %v, want %v", err, got, want)
	}
}

func TestOpenBadURL(t *testing.T) {
	openErr(t, "http://127.0.0.1:6379/0", redis.Options{}, time.Second, baton.ErrInvalid, `unknown scheme "http"`)
	openErr(t, "redis://127.0.0.1:6379/0?bogus=1", redis.Options{}, time.Second, baton.ErrInvalid, `unknown parameter "bogus"`)
}

func TestOpenUnreachable(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	transient(t, openErr(t, fmt.Sprintf("redis://127.0.0.1:%d/0", port), redis.Options{}, 3*time.Second,
		baton.ErrUnavailable, "cannot connect", fmt.Sprintf("127.0.0.1:%d", port)), true)
	transient(t, openErr(t, fmt.Sprintf("redis+sentinel://127.0.0.1:%d/mymaster/0", port), redis.Options{}, 3*time.Second,
		baton.ErrUnavailable, "mymaster"), true)
}

func TestOpenUnresponsive(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Pause() // the kernel still accepts connections; nothing answers
	defer srv.Resume()
	transient(t, openErr(t, srv.URL(0)+"?dial_timeout=300ms", redis.Options{}, 2*time.Second, baton.ErrUnavailable, "no answer in time"), true)
}

func TestOpenWrongPassword(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "s3cret"})
	url := strings.Replace(srv.URL(0), "s3cret", "wrongpw", 1)
	transient(t, openErr(t, url, redis.Options{}, 3*time.Second, baton.ErrUnavailable, "authentication failed"), false)
	openErr(t, strings.Replace(srv.URL(0), ":s3cret@", "", 1), redis.Options{}, 3*time.Second, baton.ErrUnavailable, "authentication failed")
	s := open(t, srv.URL(0), redis.Options{})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNoLua(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	if _, err := srv.Do(t.Context(), "ACL", "SETUSER", "nolua", "on", ">pw", "~*", "&*", "+@all", "-@scripting"); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(srv.URL(0), "redis://", "redis://nolua:pw@", 1)
	transient(t, openErr(t, url, redis.Options{}, 3*time.Second, baton.ErrUnavailable, "cannot run Lua scripts"), false)
}

func TestOpenNoSuchDB(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	transient(t, openErr(t, srv.URL(99), redis.Options{}, 3*time.Second, baton.ErrUnavailable, "database 99 does not exist"), false)
}

func TestOpenAfterClose(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(0), redis.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(t.Context(), "t", []baton.Update{{ID: "a", Value: []byte("1"), MsgID: "m"}}); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := s.AcquireNode(t.Context(), "n", time.Second); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("AcquireNode after Close: %v, want ErrClosed", err)
	}
}
