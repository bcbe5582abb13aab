package ledger_test

import (
	"path/filepath"
	"testing"

	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/sqlite"
)

// copiesIn opens the node's ledger copies kept in dir (copies.db, as
// baton serve keeps them), closed when the test ends: register it before
// the witness that uses it, so that the witness is closed first.
func copiesIn(t testing.TB, dir string) ledger.Copies {
	t.Helper()
	c, err := sqlite.OpenCopies(filepath.Join(dir, "copies.db"), sqlite.CopiesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
