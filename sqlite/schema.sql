-- Baton's embedded store. Times are Unix nanoseconds from the store's clock.
-- PRAGMA user_version is the schema's version (sqlite.go, migrate).
-- One row per topic holds its lock, its cursor and its queue counters, so that
-- every fenced write checks and moves them in one transaction.
CREATE TABLE IF NOT EXISTS topics (
	topic          TEXT PRIMARY KEY,
	last_seq       INTEGER NOT NULL DEFAULT 0, -- last appended seq
	trimmed_below  INTEGER NOT NULL DEFAULT 1, -- earliest seq that may still be kept
	-- the publish lock: live while epoch > recorded_epoch and the holder's
	-- node lease (nodes) is live at node_epoch
	epoch          INTEGER NOT NULL DEFAULT 0,
	recorded_epoch INTEGER NOT NULL DEFAULT 0, -- newest epoch with a release record
	holder         TEXT    NOT NULL DEFAULT '',
	acquired_at    INTEGER NOT NULL DEFAULT 0,
	expires_at     INTEGER NOT NULL DEFAULT 0, -- when a recorded lease ended
	-- the cursor: last published item
	cursor_seq     INTEGER NOT NULL DEFAULT 0,
	cursor_hash    BLOB,
	cursor_epoch   INTEGER NOT NULL DEFAULT 0,
	cursor_at      INTEGER NOT NULL DEFAULT 0,
	node_epoch     INTEGER NOT NULL DEFAULT 0  -- the holder's node lease
);
-- The unrecorded topic leases by holder: the topics a node lease ends.
CREATE INDEX IF NOT EXISTS topics_held ON topics (holder) WHERE epoch > recorded_epoch;

-- Node leases: each node's latest one. It is live while ended = 0 and
-- expires_at > now. Ending it (ended = 1) records every topic lease under it
-- in the same transaction, so an unrecorded topic lease always has its node
-- row at its node_epoch, not ended.
CREATE TABLE IF NOT EXISTS nodes (
	node        TEXT PRIMARY KEY,
	epoch       INTEGER NOT NULL,
	ended       INTEGER NOT NULL DEFAULT 0,
	acquired_at INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The change log the watchers of other processes read (watch.go): one row
-- per signalling write and topic, written in the write's transaction, pruned
-- from the front (the newest row is always kept, so ids never go back).
-- An acquisition's row names the new holder and epoch (recentlock.go).
CREATE TABLE IF NOT EXISTS changes (
	id      INTEGER PRIMARY KEY,
	topic   TEXT    NOT NULL,
	signals INTEGER NOT NULL,
	origin  INTEGER NOT NULL, -- the writing Store's random id
	holder  TEXT    NOT NULL DEFAULT '',
	epoch   INTEGER NOT NULL DEFAULT 0
);

-- The queue. (topic, seq) is the position; the two indexes are the msg id
-- dedup index and the hash -> position index a successor resumes from
-- (docs/design.md, step 5).
CREATE TABLE IF NOT EXISTS items (
	topic       TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	id          TEXT    NOT NULL,
	value       BLOB    NOT NULL,
	msg_id      TEXT    NOT NULL,
	hash        BLOB    NOT NULL,
	ingested_at INTEGER NOT NULL,
	PRIMARY KEY (topic, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS items_msg_id ON items (topic, msg_id);
CREATE INDEX IF NOT EXISTS items_hash ON items (topic, hash);

-- The ledger: one leaf per published item, written with the cursor.
CREATE TABLE IF NOT EXISTS leaves (
	topic     TEXT    NOT NULL,
	seq       INTEGER NOT NULL,
	item_hash BLOB    NOT NULL,
	epoch     INTEGER NOT NULL,
	publisher TEXT    NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (topic, seq)
) WITHOUT ROWID;

-- Lock-released records: exactly one per ended epoch.
CREATE TABLE IF NOT EXISTS releases (
	topic           TEXT    NOT NULL,
	epoch           INTEGER NOT NULL,
	holder          TEXT    NOT NULL,
	reason          TEXT    NOT NULL,
	at              INTEGER NOT NULL,
	last_seq        INTEGER NOT NULL,
	last_hash       BLOB,
	successor       TEXT    NOT NULL DEFAULT '',
	successor_epoch INTEGER NOT NULL DEFAULT 0,
	successor_at    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (topic, epoch)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS members (
	node       TEXT PRIMARY KEY,
	addr       TEXT    NOT NULL,
	state      TEXT    NOT NULL,
	leases     INTEGER NOT NULL,
	public_key BLOB,
	heartbeat  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Every public key a node registered with its heartbeat, kept after the
-- member leaves so that old ledger signatures can be checked.
CREATE TABLE IF NOT EXISTS node_keys (
	node       TEXT NOT NULL,
	public_key BLOB NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (node, public_key)
) WITHOUT ROWID;

-- Signed ledger checkpoints (one per size) and their witnesses' cosignatures.
CREATE TABLE IF NOT EXISTS checkpoints (
	topic TEXT    NOT NULL,
	size  INTEGER NOT NULL,
	root  BLOB    NOT NULL,
	epoch INTEGER NOT NULL,
	node  TEXT    NOT NULL,
	at    INTEGER NOT NULL,
	note  BLOB    NOT NULL,
	PRIMARY KEY (topic, size)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS cosignatures (
	topic     TEXT    NOT NULL,
	size      INTEGER NOT NULL,
	node      TEXT    NOT NULL,
	signature BLOB    NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (topic, size, node)
) WITHOUT ROWID;
