package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
	"github.com/baton-pub/baton/storetest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"sqlite:///var/lib/baton/baton.db", "/var/lib/baton/baton.db", true},
		{"sqlite://rel/path.db", "rel/path.db", true},
		{"sqlite://baton.db", "baton.db", true},
		{"plain/file.db", "plain/file.db", true},
		{"sqlite:///x.db?poll=5ms&sync=normal", "/x.db", true},
		{"sqlite:///x.db?sync=bogus", "", false},
		{"sqlite:///x.db?nope=1", "", false},
		{"redis://localhost:6379", "", false},
		{"sqlite://", "", false},
		{"sqlite:///dir/", "", false},
		{"", "", false},
	} {
		var o sqlite.Options
		got, err := sqlite.ParseURL(tc.in, &o)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestTwoHandlesSignal checks the cross-process path: a write through one
// handle wakes a subscription on another handle of the same file.
func TestTwoHandlesSignal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.db")
	a, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, "sqlite://"+path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub := b.Subscribe("t1", baton.SignalAppend|baton.SignalLock)
	defer sub.Close()
	u, _ := baton.Normalize(baton.Update{ID: "x", Value: []byte(`1`)})
	if _, err := a.Append(ctx, "t1", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.C():
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up on the other handle")
	}
	items, err := b.Items(ctx, "t1", 0, 10)
	if err != nil || len(items) != 1 || !items[0].Verify() {
		t.Fatalf("items = %v, %v", items, err)
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	open := func(t *testing.T, path string) baton.Store {
		s, err := sqlite.Open(context.Background(), path, sqlite.Options{Sync: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	n := 0
	storetest.Run(t, func(t *testing.T) baton.Store {
		n++
		return open(t, filepath.Join(dir, fmt.Sprintf("c%d.db", n)))
	}, storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
		n++
		p := filepath.Join(dir, fmt.Sprintf("s%d.db", n))
		return open(t, p), open(t, p)
	}))
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"sqlite:///a/b.db", "sqlite://rel.db?poll=3ms", "x.db", "sqlite://?sync=full", "redis://h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var o sqlite.Options
		path, err := sqlite.ParseURL(raw, &o)
		if err != nil {
			if !errors.Is(err, baton.ErrInvalid) {
				t.Fatalf("ParseURL(%q): %v is not ErrInvalid", raw, err)
			}
			return
		}
		if path == "" {
			t.Fatalf("ParseURL(%q) accepted an empty path", raw)
		}
	})
}
