package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// topicState is what the watcher compares to tell which signals to raise.
type topicState struct {
	lastSeq, cursorSeq, epoch, recorded uint64
	expiresAt                           int64
}

// watcher turns commits by other connections (other processes) into signals.
type watcher struct {
	s    *Store
	conn *sql.Conn
	ver  int64
	seen map[string]topicState
}

func (s *Store) newWatcher(ctx context.Context) (*watcher, error) {
	conn, err := s.rdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open sqlite watcher: %w", wrapErr(err))
	}
	w := &watcher{s: s, conn: conn}
	if err := w.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&w.ver); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open sqlite watcher: %w", wrapErr(err))
	}
	w.seen, err = w.snapshot(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return w, nil
}

func (w *watcher) run(ctx context.Context) {
	defer w.conn.Close()
	t := time.NewTicker(w.s.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ver int64
		if err := w.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&ver); err != nil {
			if ctx.Err() == nil {
				w.s.log.Warn("sqlite watcher", "err", err)
			}
			continue
		}
		if ver == w.ver {
			continue
		}
		w.ver = ver
		now, err := w.snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.s.log.Warn("sqlite watcher", "err", err)
			}
			continue
		}
		for topic, st := range now {
			old, ok := w.seen[topic]
			var sig baton.Signal
			if !ok {
				sig |= baton.SignalTopic | baton.SignalLock
			}
			if st.lastSeq != old.lastSeq {
				sig |= baton.SignalAppend
			}
			if st.cursorSeq != old.cursorSeq {
				sig |= baton.SignalCommit
			}
			if st.epoch != old.epoch || st.recorded != old.recorded || st.expiresAt != old.expiresAt {
				sig |= baton.SignalLock
			}
			if sig != 0 {
				w.s.sig.Notify(topic, sig)
			}
		}
		w.seen = now
	}
}

func (w *watcher) snapshot(ctx context.Context) (map[string]topicState, error) {
	rows, err := w.conn.QueryContext(ctx,
		`SELECT topic, last_seq, cursor_seq, epoch, recorded_epoch, expires_at FROM topics`)
	if err != nil {
		return nil, fmt.Errorf("read topics: %w", wrapErr(err))
	}
	defer rows.Close()
	m := make(map[string]topicState, len(w.seen)+1)
	for rows.Next() {
		var t string
		var st topicState
		if err := rows.Scan(&t, &st.lastSeq, &st.cursorSeq, &st.epoch, &st.recorded, &st.expiresAt); err != nil {
			return nil, fmt.Errorf("read topics: %w", err)
		}
		m[t] = st
	}
	return m, rows.Err()
}
