package ledger

import "errors"

// Copies is where a node keeps its copies of the topics' ledgers (the
// witness's, which the checkpointer of a topic this node publishes signs
// from): each topic's leaves, the hashes of its tree and what the witness
// accepted of it, every topic in one store. A node follows every topic, so
// a directory and files per topic cost a node with ten thousand topics
// tens of thousands of files and, when it joined or took over a third of
// them, a third to half of its CPU in opening and creating them
// (docs/benchmarks.md, "The node's copies in one database").
//
// The engine is sqlite.OpenCopies (one SQLite file per node, whichever
// store the node uses); MemCopies is for tests. Every engine passes
// ledger/copiestest.
type Copies interface {
	// Size is the number of leaves stored for topic (0 for a topic never
	// written): leaves 1..Size, and every node hash of the tree of that
	// size, are stored.
	Size(topic string) (uint64, error)
	// Append stores the leaf encodings of seqs first, first+1, ... and the
	// node hashes, all or none. first must be Size+1, and the nodes of
	// each level must continue that level's stored nodes: in order of
	// index, the first one's index the number stored at its level, no gap
	// (as a tree's appends make them); ErrCopyGap otherwise. This lets an
	// engine pack consecutive hashes together.
	Append(topic string, first uint64, encs [][]byte, nodes []Node) error
	// Nodes reads node hashes (ErrCopyMissing if one is not stored).
	Nodes(topic string, ids []NodeID) ([][]byte, error)
	// Entry reads the encoding of the leaf with seq (ErrCopyMissing if it is
	// not stored).
	Entry(topic string, seq uint64) ([]byte, error)
	// Entries reads the encodings of the n leaves first..first+n-1, in
	// order (ErrCopyMissing if one is not stored): a tree hashes a block of
	// leaves with one read, not one per leaf.
	Entries(topic string, first uint64, n int) ([][]byte, error)
	// Reset deletes the topic's leaves and node hashes, not its state.
	Reset(topic string) error
	// State is what SaveState stored last for topic, nil if nothing.
	State(topic string) ([]byte, error)
	// SaveState stores state; when it returns, the state survives a crash
	// of the machine, and so do the Appends that returned before it.
	SaveState(topic string, state []byte) error
	// Close releases the store; calls after it fail.
	Close() error
}

// NodeID names a node of a topic's tree: the hash of the perfect subtree
// of height Level at Index (level 0: the leaf hashes).
type NodeID struct {
	Level uint
	Index uint64
}

// Node is a node's hash.
type Node struct {
	NodeID
	Hash []byte
}

var (
	// ErrCopyGap: an Append does not follow on from the stored leaves.
	ErrCopyGap = errors.New("ledger copy: append does not follow on")
	// ErrCopyMissing: a node hash or leaf asked for is not stored.
	ErrCopyMissing = errors.New("ledger copy: not stored")
	// ErrCopiesClosed: a call after Close.
	ErrCopiesClosed = errors.New("ledger copies: closed")
)
