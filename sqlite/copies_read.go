package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/baton-pub/baton/ledger"
)

// maxNodesQuery is the most chunks one statement reads; nodesRows are the
// sizes prepared, a read padded to the next (by repeating its last chunk).
const maxNodesQuery = 128

var nodesRows = [...]int{1, 2, 4, 8, 16, 32, 64, 128}

const (
	// Reader statements.
	crSize = iota
	crEntry
	crState
	crNode
	crLevels
	crNodes // + i: nodesRows[i] chunks
	crCount = crNodes + len(nodesRows)
)

var copyReaderSQL = func() [crCount]string {
	var q [crCount]string
	q[crSize] = `SELECT chunk, n FROM copy_leaves WHERE topic = ? ORDER BY chunk DESC LIMIT 1`
	q[crEntry] = `SELECT n, encs FROM copy_leaves WHERE topic = ? AND chunk = ?`
	q[crState] = `SELECT state FROM copy_states WHERE topic = ?`
	// One hash: cut from its chunk in SQL (empty past the chunk's end).
	q[crNode] = `SELECT substr(hashes, ?, ` + fmt.Sprint(copyHashSize) + `) FROM copy_nodes WHERE topic = ? AND level = ? AND chunk = ?`
	// Each level's last chunk: max() picks the row whose hashes are
	// counted.
	q[crLevels] = `SELECT level, max(chunk), length(hashes) FROM copy_nodes WHERE topic = ? GROUP BY level`
	for i, n := range nodesRows {
		q[crNodes+i] = `SELECT level, chunk, hashes FROM copy_nodes WHERE topic = ? AND (level, chunk) IN (VALUES ` + rowsOf("(?, ?)", n) + `)`
	}
	return q
}()

// rowsOf is n copies of row, comma-separated. The parameters are
// anonymous: the driver looks a named or numbered one up by name, a cost
// that grows with the statement's parameters.
func rowsOf(row string, n int) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// readErr is the error of a failed read: ErrCopiesClosed if Close began
// (the pool closed under the read), err otherwise.
func (c *Copies) readErr(err error) error {
	if c.closed.Load() {
		return ledger.ErrCopiesClosed
	}
	return err
}

// Size implements ledger.Copies: stored and pending leaves. It reads the
// stored size from the file (a tree reads it when it opens): if that is
// not the size the topic's entry has, while nothing of it is pending or
// being reset (the file was changed behind this handle: another handle,
// or a repair), the entry's sizes are read again at its next Append.
func (c *Copies) Size(topic string) (uint64, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	n, err := c.storedSize(topic)
	if err != nil {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, err)
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if t := c.topics[topic]; t != nil && t.loaded {
		if t.bytes == 0 && !t.resetting && t.leaves != n {
			t.loaded = false
			return n, nil
		}
		return t.leaves + uint64(len(t.pend)), nil
	}
	return n, nil
}

// storedSize reads the number of leaves stored for topic: the last leaf
// chunk's, one search.
func (c *Copies) storedSize(topic string) (uint64, error) {
	var chunk, n int64
	err := c.rst[crSize].QueryRowContext(context.Background(), topic).Scan(&chunk, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, c.readErr(err)
	}
	return uint64(chunk)*copyLeafChunk + uint64(n), nil
}

// Entry implements ledger.Copies: it reads the leaf's chunk and walks it.
func (c *Copies) Entry(topic string, seq uint64) ([]byte, error) {
	encs, err := c.Entries(topic, seq, 1)
	if err != nil {
		return nil, err
	}
	return encs[0], nil
}

// Entries implements ledger.Copies: a query per chunk of leaves the seqs
// span (one for a tree's block of 2^6 leaves: copyLeafChunk is its size),
// and the leaves still pending from memory.
func (c *Copies) Entries(topic string, first uint64, n int) ([][]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: leaves %d+%d of %s: %w", first, n, topic, ledger.ErrCopiesClosed)
	}
	if n <= 0 || first == 0 || first > math.MaxInt64-uint64(n) {
		return nil, fmt.Errorf("ledger copies: leaves %d+%d of %s: %w", first, n, topic, ledger.ErrCopyMissing)
	}
	out := make([][]byte, n)
	// Pending leaves, or none there: what is above the stored leaves.
	stored := first + uint64(n) - 1 // the last seq to read from the file
	c.dmu.Lock()
	if t := c.topics[topic]; t != nil && t.loaded && stored > t.leaves {
		for seq := max(first, t.leaves+1); seq < first+uint64(n); seq++ {
			k := seq - t.leaves - 1
			if k >= uint64(len(t.pend)) {
				c.dmu.Unlock()
				return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, ledger.ErrCopyMissing)
			}
			out[seq-first] = bytes.Clone(t.pend[k])
		}
		stored = t.leaves
	}
	c.dmu.Unlock()
	for seq := first; seq <= stored; {
		chunk := (seq - 1) / copyLeafChunk
		last := min(stored, (chunk+1)*copyLeafChunk)
		if err := c.chunkEntries(topic, chunk, seq, last, out[seq-first:]); err != nil {
			return nil, err
		}
		seq = last + 1
	}
	return out, nil
}

// chunkEntries copies the encodings of seqs from..to, all in one chunk of
// leaves, to out.
func (c *Copies) chunkEntries(topic string, chunk, from, to uint64, out [][]byte) error {
	fail := func(err error) error {
		return fmt.Errorf("ledger copies: leaves %d to %d of %s: %w", from, to, topic, err)
	}
	rows, err := c.rst[crEntry].QueryContext(context.Background(), topic, int64(chunk))
	if err != nil {
		return fail(c.readErr(err))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return fail(c.readErr(err))
		}
		return fail(ledger.ErrCopyMissing)
	}
	var n int64
	var encs sql.RawBytes // the chunk, read in place: only the leaves are copied
	if err := rows.Scan(&n, &encs); err != nil {
		return fail(c.readErr(err))
	}
	base := chunk * copyLeafChunk // the seq before the chunk's first
	if to-base > uint64(n) {
		return fail(ledger.ErrCopyMissing)
	}
	for i := uint64(0); i < to-base; i++ {
		l, k := binary.Uvarint(encs)
		if k <= 0 || uint64(len(encs)-k) < l {
			return fail(fmt.Errorf("a torn leaf chunk (at leaf %d of it)", i))
		}
		if seq := base + 1 + i; seq >= from {
			out[seq-from] = bytes.Clone(encs[k : k+int(l) : k+int(l)])
		}
		encs = encs[k+int(l):]
	}
	return nil
}

// nodeChunk names a chunk of node hashes.
type nodeChunk struct {
	level uint
	chunk uint64
}

// Nodes implements ledger.Copies. The chunks holding the ids are each read
// once; up to maxNodesQuery chunks in one statement, more in several, in
// one read transaction: either way a snapshot, whatever the writer commits
// meanwhile.
func (c *Copies) Nodes(topic string, ids []ledger.NodeID) ([][]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	missing := func(id ledger.NodeID) error {
		return fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
	}
	for _, id := range ids {
		if uint64(id.Level) > math.MaxInt64 || id.Index > math.MaxInt64 {
			return nil, missing(id)
		}
	}
	// The pending hashes from the buffer, the stored ones from the file.
	var stored []int // the ids to read from the file, if some are pending
	var hs [][]byte
	c.dmu.Lock()
	if t := c.topics[topic]; t != nil && t.loaded && len(t.nodes) > 0 {
		hs = make([][]byte, len(ids))
		stored = make([]int, 0, len(ids))
		for i, id := range ids {
			var have uint64
			if id.Level < uint(len(t.levels)) {
				have = t.levels[id.Level]
			}
			if id.Index < have {
				stored = append(stored, i)
				continue
			}
			at := (id.Index - have) * copyHashSize
			if id.Level >= uint(len(t.nodes)) || at >= uint64(len(t.nodes[id.Level])) {
				c.dmu.Unlock()
				return nil, missing(id)
			}
			hs[i] = bytes.Clone(t.nodes[id.Level][at : at+copyHashSize])
		}
	}
	c.dmu.Unlock()
	if hs == nil {
		return c.storedNodes(topic, ids)
	}
	if len(stored) > 0 {
		sub := make([]ledger.NodeID, len(stored))
		for j, i := range stored {
			sub[j] = ids[i]
		}
		got, err := c.storedNodes(topic, sub)
		if err != nil {
			return nil, err
		}
		for j, i := range stored {
			hs[i] = got[j]
		}
	}
	return hs, nil
}

// storedNodes reads node hashes from the file.
func (c *Copies) storedNodes(topic string, ids []ledger.NodeID) ([][]byte, error) {
	missing := func(id ledger.NodeID) error {
		return fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
	}
	hs := make([][]byte, len(ids))
	ctx := context.Background()
	switch len(ids) {
	case 0:
		return hs, nil
	case 1:
		// The most common read, in a statement of its own: the hash is cut
		// from its chunk in SQL.
		id := ids[0]
		var h []byte
		err := c.rst[crNode].QueryRowContext(ctx, int64(id.Index%copyNodeChunk*copyHashSize+1),
			topic, int64(id.Level), int64(id.Index/copyNodeChunk)).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, missing(id)
		}
		if err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
		if len(h) != copyHashSize {
			return nil, missing(id) // past the chunk's end
		}
		hs[0] = h
		return hs, nil
	}
	// The chunks to read, each once, and the ids each serves.
	want := make(map[nodeChunk][]int, len(ids))
	var chunks []nodeChunk
	for i, id := range ids {
		k := nodeChunk{id.Level, id.Index / copyNodeChunk}
		if _, ok := want[k]; !ok {
			chunks = append(chunks, k)
		}
		want[k] = append(want[k], i)
	}
	stmt := func(id int) *sql.Stmt { return c.rst[id] }
	if len(chunks) > maxNodesQuery {
		tx, err := c.rdb.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
		defer tx.Rollback() // a read: nothing to undo
		stmt = func(id int) *sql.Stmt { return tx.StmtContext(ctx, c.rst[id]) }
	}
	for from := 0; from < len(chunks); from += maxNodesQuery {
		part := chunks[from:min(from+maxNodesQuery, len(chunks))]
		i := 0
		for nodesRows[i] < len(part) {
			i++
		}
		args := make([]any, 0, 1+2*nodesRows[i])
		args = append(args, topic)
		for j := range nodesRows[i] {
			k := part[min(j, len(part)-1)]
			args = append(args, int64(k.level), int64(k.chunk))
		}
		if err := readNodes(ctx, stmt(crNodes+i), args, ids, want, hs); err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
	}
	for i, h := range hs {
		if h == nil {
			return nil, missing(ids[i])
		}
	}
	return hs, nil
}

// readNodes reads the chunks st finds and copies into hs[i] the hash of
// each ids[i] they hold.
func readNodes(ctx context.Context, st *sql.Stmt, args []any, ids []ledger.NodeID, want map[nodeChunk][]int, hs [][]byte) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var level, chunk int64
		var hashes sql.RawBytes // read in place: only the hashes asked are copied
		if err := rows.Scan(&level, &chunk, &hashes); err != nil {
			return err
		}
		for _, i := range want[nodeChunk{uint(level), uint64(chunk)}] {
			at := ids[i].Index % copyNodeChunk * copyHashSize
			if at+copyHashSize <= uint64(len(hashes)) {
				hs[i] = bytes.Clone(hashes[at : at+copyHashSize])
			}
		}
	}
	return rows.Err()
}

// State implements ledger.Copies.
func (c *Copies) State(topic string) ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: state of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	var state []byte
	err := c.rst[crState].QueryRowContext(context.Background(), topic).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger copies: state of %s: %w", topic, c.readErr(err))
	}
	if state == nil {
		state = []byte{} // stored empty (a nil state is no row)
	}
	return state, nil
}
