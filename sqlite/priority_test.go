package sqlite_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/baton-pub/baton/sqlite"
)

// TestRenewalsAnnounced: a renewal of one handle is seen by the other
// writers of every handle on the file (another process would be one), its
// own included, and no more once it ended.
func TestRenewalsAnnounced(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("renewals are announced on Linux only")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	a, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if sqlite.Announced(a) || sqlite.Announced(b) {
		t.Fatal("a renewal announced before any")
	}
	done := sqlite.Announce(a)
	if !sqlite.Announced(b) {
		t.Error("b does not see a's renewal")
	}
	if !sqlite.Announced(a) {
		t.Error("a's other writers do not see a's renewal")
	}
	done()
	if sqlite.Announced(a) || sqlite.Announced(b) {
		t.Error("a's renewal still seen after it ended")
	}
}
