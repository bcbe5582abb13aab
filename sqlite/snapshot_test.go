package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/sqlite"
)

// TestMigrateSnapshot: a file made before snapshots (no snapshot table, no
// items.deleted column) gets both when opened; its items read back as
// they were, and commits from then on move the snapshot.
func TestMigrateSnapshot(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s := openStore(t, path, sqlite.Options{})
	l, err := leasetest.Acquire(ctx, s, "t", "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(s *sqlite.Store, prev uint64, ups ...baton.Update) {
		t.Helper()
		if _, err := s.Append(ctx, "t", ups); err != nil {
			t.Fatal(err)
		}
		its, err := s.Items(ctx, "t", prev, len(ups))
		if err == nil {
			_, err = s.Commit(ctx, baton.Commit{Topic: "t", Epoch: l.Epoch, Holder: l.Holder, PrevSeq: prev, Items: its, At: time.Now()})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	commit(s, 0, baton.Update{ID: "a", Value: json.RawMessage("1"), MsgID: "m1"})
	s.Close()

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE snapshot`, `ALTER TABLE items DROP COLUMN deleted`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = openStore(t, path, sqlite.Options{})
	if its, err := s.Items(ctx, "t", 0, 10); err != nil || len(its) != 1 || its[0].Deleted || !its[0].Verify() {
		t.Fatalf("items of the old file: %+v, %v", its, err)
	}
	commit(s, 1, baton.Update{ID: "b", Value: json.RawMessage("2"), MsgID: "m2"},
		baton.Update{ID: "c", Value: json.RawMessage("null"), MsgID: "m3", Deleted: true})
	seq, rows, _, err := s.Snapshot(ctx, "t", "", 10)
	if err != nil || seq != 3 || len(rows) != 1 || rows[0].ID != "b" {
		t.Fatalf("snapshot after the migration: seq %d, %+v, %v", seq, rows, err)
	}
	if ps, err := s.Published(ctx, "t", 2, 1); err != nil || len(ps) != 1 || !ps[0].Deleted || !ps[0].Verify() {
		t.Fatalf("tombstone after the migration: %+v, %v", ps, err)
	}
}
