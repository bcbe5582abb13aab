package ledger_test

import (
	"testing"

	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/ledger/copiestest"
)

func TestMemCopies(t *testing.T) {
	copiestest.Run(t, func(t *testing.T) copiestest.Opener {
		var m *ledger.MemCopies
		return func() (ledger.Copies, error) {
			if m == nil {
				m = ledger.NewMemCopies()
			} else {
				m = m.Reopen()
			}
			return m, nil
		}
	})
}
