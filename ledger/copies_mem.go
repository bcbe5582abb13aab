package ledger

import (
	"bytes"
	"fmt"
	"sync"
)

// MemCopies keeps copies in memory: for tests, and for a witness whose
// copies need not outlive it. A *MemCopies may be handed to one witness
// after another to stand for a node's restart.
type MemCopies struct {
	mu     sync.Mutex
	closed bool
	topics map[string]*memCopy
}

type memCopy struct {
	encs  [][]byte
	nodes map[NodeID][]byte
	// levels counts the nodes stored at each level.
	levels []uint64
	state  []byte
}

var _ Copies = (*MemCopies)(nil)

// NewMemCopies returns an empty MemCopies.
func NewMemCopies() *MemCopies { return &MemCopies{topics: map[string]*memCopy{}} }

func (m *MemCopies) get(topic string, make bool) (*memCopy, error) {
	if m.closed {
		return nil, ErrCopiesClosed
	}
	c := m.topics[topic]
	if c == nil && make {
		c = &memCopy{nodes: map[NodeID][]byte{}}
		m.topics[topic] = c
	}
	return c, nil
}

// Size implements Copies.
func (m *MemCopies) Size(topic string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, false)
	if err != nil || c == nil {
		return 0, err
	}
	return uint64(len(c.encs)), nil
}

// Append implements Copies.
func (m *MemCopies) Append(topic string, first uint64, encs [][]byte, nodes []Node) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, true)
	if err != nil {
		return err
	}
	if first != uint64(len(c.encs))+1 {
		return fmt.Errorf("%w: first seq %d, %d stored", ErrCopyGap, first, len(c.encs))
	}
	next := map[uint]uint64{}
	for _, n := range nodes {
		want, ok := next[n.Level]
		if !ok && n.Level < uint(len(c.levels)) {
			want = c.levels[n.Level]
		}
		if n.Index != want {
			return fmt.Errorf("%w: node %d/%d, next at that level %d", ErrCopyGap, n.Level, n.Index, want)
		}
		next[n.Level] = want + 1
	}
	for l, n := range next {
		for uint(len(c.levels)) <= l {
			c.levels = append(c.levels, 0)
		}
		c.levels[l] = n
	}
	for _, e := range encs {
		c.encs = append(c.encs, bytes.Clone(e))
	}
	for _, n := range nodes {
		c.nodes[n.NodeID] = bytes.Clone(n.Hash)
	}
	return nil
}

// Nodes implements Copies.
func (m *MemCopies) Nodes(topic string, ids []NodeID) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, false)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, len(ids))
	for i, id := range ids {
		var h []byte
		if c != nil {
			h = c.nodes[id]
		}
		if h == nil {
			return nil, fmt.Errorf("%w: node %d/%d of %s", ErrCopyMissing, id.Level, id.Index, topic)
		}
		hs[i] = bytes.Clone(h)
	}
	return hs, nil
}

// Entry implements Copies.
func (m *MemCopies) Entry(topic string, seq uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, false)
	if err != nil {
		return nil, err
	}
	if c == nil || seq == 0 || seq > uint64(len(c.encs)) {
		return nil, fmt.Errorf("%w: leaf %d of %s", ErrCopyMissing, seq, topic)
	}
	return bytes.Clone(c.encs[seq-1]), nil
}

// Entries implements Copies.
func (m *MemCopies) Entries(topic string, first uint64, n int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, false)
	if err != nil {
		return nil, err
	}
	if c == nil || n <= 0 || first == 0 || first-1 > uint64(len(c.encs)) || uint64(n) > uint64(len(c.encs))-(first-1) {
		return nil, fmt.Errorf("%w: leaves %d+%d of %s", ErrCopyMissing, first, n, topic)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Clone(c.encs[first-1+uint64(i)])
	}
	return out, nil
}

// Reset implements Copies.
func (m *MemCopies) Reset(topic string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, false)
	if err != nil || c == nil {
		return err
	}
	c.encs, c.nodes, c.levels = nil, map[NodeID][]byte{}, nil
	return nil
}

// State implements Copies.
func (m *MemCopies) State(topic string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, false)
	if err != nil || c == nil {
		return nil, err
	}
	return bytes.Clone(c.state), nil
}

// SaveState implements Copies.
func (m *MemCopies) SaveState(topic string, state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(topic, true)
	if err != nil {
		return err
	}
	c.state = bytes.Clone(state)
	return nil
}

// Close implements Copies. The copies stay readable by Reopen.
func (m *MemCopies) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Reopen returns a MemCopies holding what m holds (m closed or not): a
// node's restart, for tests.
func (m *MemCopies) Reopen() *MemCopies {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &MemCopies{topics: m.topics}
}

// Topics counts the topics with anything stored (for tests).
func (m *MemCopies) Topics() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.topics)
}
