package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/sqlite"
)

// TestLedgerVerify publishes through a node with a ledger key on a SQLite
// store, audits it with `baton ledger verify` (exit 0), alters one item
// behind the store's back and audits again: exit status 1, the item named.
func TestLedgerVerify(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(st, node.Config{Node: "node-a", TTL: time.Second, Key: key, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ups []baton.Update
	for i := 0; i < 40; i++ {
		ups = append(ups, baton.Update{ID: "k", Value: []byte(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)})
	}
	if _, err := st.Append(ctx, "quotes", ups); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "a checkpoint of 40 items", func() error {
		cp, err := st.Checkpoint(ctx, "quotes")
		if err == nil && cp.Size != 40 {
			err = fmt.Errorf("checkpoint of %d items", cp.Size)
		}
		return err
	})
	n.Close()

	run := func(args ...string) (string, error) {
		cmd := newLedger()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	out, err := run("verify", "--store", "sqlite://"+path)
	if err != nil || !strings.Contains(out, "quotes: 40 leaves, 40 items checked") || !strings.Contains(out, ": OK") {
		t.Fatalf("verify of an untouched ledger: %v\n%s", err, out)
	}

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE items SET value = '999' WHERE topic = 'quotes' AND seq = 3`); err != nil {
		t.Fatal(err)
	}
	out, err = run("verify", "quotes", "--store", "sqlite://"+path)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("verify of a tampered ledger: err %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(out, "item 3: its content does not hash") {
		t.Fatalf("verify does not name item 3:\n%s", out)
	}
	if _, err := run("prove", "quotes", "3", "--node", "127.0.0.1:1"); err == nil {
		t.Fatal("prove without pinned keys succeeded")
	}
}
