package sqlite

import (
	"context"

	"github.com/baton-pub/baton"
)

// Locks named by their changes (baton.RecentLock, package recentlock): an
// acquisition logs its new holder and epoch with its change (Acquire), and
// the watcher of every other process records them before it signals the
// topic; this process records its own at commit (signalled). Every other
// lock change (a release, an end with its node lease, a deletion, a lapse
// recorded) makes the topic unknown, and a watcher that fell behind the
// log forgets every topic. A standby of a mass hand-over then parks behind
// the node that took its topic without reading the lock: a read per orphan
// per node, a seventh of a survivor's CPU in the wave (docs/benchmarks.md,
// "Fewer statements per topic in a mass hand-over").

// heardLock records topic's change sig, which named holder and epoch if
// it was an acquisition.
func (s *Store) heardLock(topic string, sig baton.Signal, holder string, epoch uint64) {
	if sig&baton.SignalLock == 0 {
		return
	}
	if holder == "" {
		s.locks.Forget(topic)
		return
	}
	s.locks.Heard(topic, holder, epoch)
}

// RecentLock implements baton.RecentLock.
func (s *Store) RecentLock(topic string) (string, uint64, bool) { return s.locks.Recent(topic) }

// migrateChangesHolder adds the changes log's holder and epoch columns if
// the file lacks them. Rows written without them (by a process of an
// earlier version) name no holder: their topics are read.
func (s *Store) migrateChangesHolder(ctx context.Context) error {
	const missing = `SELECT count(*) < 2 FROM pragma_table_info('changes') WHERE name IN ('holder', 'epoch')`
	var m bool
	if err := s.rdb.QueryRowContext(ctx, missing).Scan(&m); err == nil && !m {
		return nil
	}
	return s.schemaChange(ctx, "name holders in the changes log", func(tx *txn) error {
		var holder, epoch int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE name = 'holder'), count(*) FILTER (WHERE name = 'epoch')
			FROM pragma_table_info('changes')`).Scan(&holder, &epoch); err != nil {
			return err
		}
		if holder == 0 {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE changes ADD COLUMN holder TEXT NOT NULL DEFAULT ''`); err != nil {
				return err
			}
		}
		if epoch == 0 {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE changes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0`); err != nil {
				return err
			}
		}
		return nil
	})
}
