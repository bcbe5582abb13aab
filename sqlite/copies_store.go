package sqlite

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/baton-pub/baton/ledger"
)

// Chunk sizes. Measured with BenchmarkCopiesAppend: 32 and 64 cost the
// same (a commit's WAL frames are what counts); 64 makes fewer rows.
const (
	copyLeafChunk = 64
	copyNodeChunk = 64
	copyHashSize  = 32
)

// Statements. An id indexes copyWriter.st (the writer's) or Copies.rst
// (the readers').
const (
	// Writer statements.
	cwBegin = iota
	cwCommit
	cwRollback
	cwSize
	cwResetLeaves
	cwResetNodes
	cwPutState
	cwDropState
	cwSavepoint
	cwRollbackTo
	cwRelease
	cwLeavesExtend
	cwLeavesFirst
	cwLeavesNext
	cwNodesExtend
	cwNodesFirst
	cwNodesNext
	cwCount
)

var copyWriterSQL = func() [cwCount]string {
	var q [cwCount]string
	q[cwBegin] = `BEGIN IMMEDIATE`
	q[cwCommit] = `COMMIT`
	q[cwRollback] = `ROLLBACK`
	q[cwSize] = `SELECT chunk, n FROM copy_leaves WHERE topic = ? ORDER BY chunk DESC LIMIT 1`
	q[cwResetLeaves] = `DELETE FROM copy_leaves WHERE topic = ?`
	q[cwResetNodes] = `DELETE FROM copy_nodes WHERE topic = ?`
	q[cwPutState] = `INSERT OR REPLACE INTO copy_states (topic, state) VALUES (?, ?)`
	q[cwDropState] = `DELETE FROM copy_states WHERE topic = ?`
	q[cwSavepoint] = `SAVEPOINT copy_write`
	q[cwRollbackTo] = `ROLLBACK TO copy_write`
	q[cwRelease] = `RELEASE copy_write`
	// Each changes one row, or none if the append does not follow on
	// (see copiesSchema). The CAST: || makes text of blobs (the bytes
	// unchanged), whose length() would count characters. Extend: the chunk holds count values. First: no
	// chunk 0 yet. Next: no chunk k yet, and chunk k-1 is full.
	q[cwLeavesExtend] = `UPDATE copy_leaves SET encs = CAST(encs || ? AS BLOB), n = n + ? WHERE topic = ? AND chunk = ? AND n = ?`
	q[cwLeavesFirst] = `INSERT INTO copy_leaves (topic, chunk, n, encs) VALUES (?, 0, ?, ?) ON CONFLICT DO NOTHING`
	q[cwLeavesNext] = `INSERT INTO copy_leaves (topic, chunk, n, encs) SELECT ?1, ?2, ?3, ?4
		WHERE (SELECT n FROM copy_leaves WHERE topic = ?1 AND chunk = ?2 - 1) = ` + fmt.Sprint(copyLeafChunk) + ` ON CONFLICT DO NOTHING`
	q[cwNodesExtend] = `UPDATE copy_nodes SET hashes = CAST(hashes || ? AS BLOB) WHERE topic = ? AND level = ? AND chunk = ? AND length(hashes) = ?`
	q[cwNodesFirst] = `INSERT INTO copy_nodes (topic, level, chunk, hashes) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING`
	q[cwNodesNext] = `INSERT INTO copy_nodes (topic, level, chunk, hashes) SELECT ?1, ?2, ?3, ?4
		WHERE (SELECT length(hashes) FROM copy_nodes WHERE topic = ?1 AND level = ?2 AND chunk = ?3 - 1) = ` +
		fmt.Sprint(copyNodeChunk*copyHashSize) + ` ON CONFLICT DO NOTHING`
	return q
}()

// size reads the number of leaves stored for topic.
func (w *copyWriter) size(topic string) (uint64, error) {
	w.arg(topic)
	rows, err := w.st[cwSize].QueryContext(context.Background(), w.args)
	clear(w.args)
	w.args = w.args[:0]
	if err != nil {
		return 0, err
	}
	err = rows.Next(w.dest)
	if err == io.EOF { // no leaf
		err, w.dest[0], w.dest[1] = nil, nil, nil
	}
	// The statement holds its read of the table until reset, which Close
	// does.
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	chunk, _ := w.dest[0].(int64)
	n, _ := w.dest[1].(int64)
	clear(w.dest)
	return uint64(chunk)*copyLeafChunk + uint64(n), nil
}

// changed runs statement id with the arguments added since the last and
// reports whether it changed a row.
func (w *copyWriter) changed(id int) (bool, error) {
	res, err := w.st[id].ExecContext(context.Background(), w.args)
	clear(w.args)
	w.args = w.args[:0]
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// levelRun is the nodes of one level in an append: consecutive indexes
// from first, their hashes concatenated.
type levelRun struct {
	level  uint
	first  uint64
	hashes []byte
}

// levelRuns groups nodes by level, checking that each level's are
// consecutive (whether the first follows on from the stored ones is
// checked in SQL).
func levelRuns(nodes []ledger.Node) ([]levelRun, error) {
	var runs []levelRun
	last := -1 // the run of the previous node: most often the next's too
	for _, nd := range nodes {
		if len(nd.Hash) != copyHashSize {
			return nil, fmt.Errorf("node %d/%d: a hash of %d bytes, not %d", nd.Level, nd.Index, len(nd.Hash), copyHashSize)
		}
		r := -1
		if last >= 0 && runs[last].level == nd.Level {
			r = last
		} else {
			for i := range runs {
				if runs[i].level == nd.Level {
					r = i
					break
				}
			}
		}
		if r < 0 {
			runs = append(runs, levelRun{level: nd.Level, first: nd.Index, hashes: make([]byte, 0, copyHashSize*(len(nodes)>>nd.Level+1))})
			r = len(runs) - 1
		} else if next := runs[r].first + uint64(len(runs[r].hashes)/copyHashSize); nd.Index != next {
			return nil, fmt.Errorf("%w: node %d/%d, %d next at that level", ledger.ErrCopyGap, nd.Level, nd.Index, next)
		}
		runs[r].hashes = append(runs[r].hashes, nd.Hash...)
		last = r
	}
	return runs, nil
}

// append checks that leaves encs from seq first, and the nodes of runs,
// follow on from the stored leaves and nodes, and stores them: a
// statement per chunk touched (see copiesSchema).
func (w *copyWriter) append(topic string, first uint64, encs [][]byte, runs []levelRun) error {
	if len(encs) == 0 || first == 0 {
		size, err := w.size(topic)
		if err != nil {
			return err
		}
		if first != size+1 {
			return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, first, size)
		}
	}
	// Leaves: the first statement checks that they follow on.
	seq := first - 1 // leaves stored before the next
	for rest := encs; len(rest) > 0; {
		chunk, off := seq/copyLeafChunk, seq%copyLeafChunk
		n := min(uint64(len(rest)), copyLeafChunk-off)
		size := 0
		for _, e := range rest[:n] {
			size += binary.MaxVarintLen64 + len(e)
		}
		buf := make([]byte, 0, size)
		for _, e := range rest[:n] {
			buf = binary.AppendUvarint(buf, uint64(len(e)))
			buf = append(buf, e...)
		}
		var id int
		switch {
		case off > 0:
			id = cwLeavesExtend
			w.arg(buf)
			w.arg(int64(n))
			w.arg(topic)
			w.arg(int64(chunk))
			w.arg(int64(off))
		case chunk == 0:
			id = cwLeavesFirst
			w.arg(topic)
			w.arg(int64(n))
			w.arg(buf)
		default:
			id = cwLeavesNext
			w.arg(topic)
			w.arg(int64(chunk))
			w.arg(int64(n))
			w.arg(buf)
		}
		ok, err := w.changed(id)
		if err != nil {
			return err
		}
		if !ok {
			// Only the first can fail so: the ones after start new chunks.
			size, err := w.size(topic)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, first, size)
		}
		seq += n
		rest = rest[n:]
	}
	for _, r := range runs {
		index := r.first
		for rest := r.hashes; len(rest) > 0; {
			chunk, off := index/copyNodeChunk, index%copyNodeChunk
			n := min(uint64(len(rest)/copyHashSize), copyNodeChunk-off)
			part := rest[:n*copyHashSize]
			var id int
			switch {
			case off > 0:
				id = cwNodesExtend
				w.arg(part)
				w.arg(topic)
				w.arg(int64(r.level))
				w.arg(int64(chunk))
				w.arg(int64(off * copyHashSize))
			case chunk == 0:
				id = cwNodesFirst
				w.arg(topic)
				w.arg(int64(r.level))
				w.arg(part)
			default:
				id = cwNodesNext
				w.arg(topic)
				w.arg(int64(r.level))
				w.arg(int64(chunk))
				w.arg(part)
			}
			ok, err := w.changed(id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: node %d/%d does not continue its level", ledger.ErrCopyGap, r.level, index)
			}
			index += n
			rest = rest[len(part):]
		}
	}
	return nil
}
