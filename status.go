package baton

import "time"

// Role is what a node does for a topic.
type Role string

const (
	RoleActive  Role = "active"  // holds the lease and publishes
	RoleStandby Role = "standby" // races for the lease when it is released
)

// NodeStatus is what GET /v1/status reports about one node.
type NodeStatus struct {
	Node      string        `json:"node"`
	Addr      string        `json:"addr"`
	Store     string        `json:"store"`
	StartedAt time.Time     `json:"started_at"`
	LeaseTTL  time.Duration `json:"lease_ttl_ns"`
	// Access says who may call the node's API: AccessOpen (anyone) or
	// AccessTokens (docs/security.md).
	Access  string        `json:"access"`
	Topics  []TopicStatus `json:"topics"`
	Members []Member      `json:"members"`
	// Watching are the other nodes whose process this node watches, a
	// connection to each held (node/peers.go): a crash of one of them is
	// noticed at once, of any other live node at the lease TTL. Absent
	// with --peer-watch=false.
	Watching []string `json:"watching,omitempty"`
	// Problems are why the node is not ready (GET /readyz answers 503);
	// none when it is.
	Problems []Problem `json:"problems,omitempty"`
}

// The values of NodeStatus.Access.
const (
	AccessOpen   = "open"
	AccessTokens = "tokens"
)

// TopicStatus is one topic as seen by one node.
type TopicStatus struct {
	Topic     string    `json:"topic"`
	Role      Role      `json:"role"`
	Holder    string    `json:"holder"`
	Held      bool      `json:"held"`
	Epoch     uint64    `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Cursor    Cursor    `json:"cursor"`
	LastSeq   uint64    `json:"last_seq"`
	FirstSeq  uint64    `json:"first_seq"`
	// QueueDepth is LastSeq - Cursor.Seq: appended but not yet published.
	QueueDepth uint64 `json:"queue_depth"`
	// Terminals is the number of this node's terminals on the topic.
	Terminals int `json:"terminals"`
	// Stalled is set when this node publishes the topic, items wait, and
	// the cursor has not moved for the node's stall time.
	Stalled bool `json:"stalled,omitempty"`
	// Ledger is the topic's ledger as this node's witness sees it (absent
	// when the node runs without a ledger).
	Ledger *LedgerStatus `json:"ledger,omitempty"`
}

// LedgerStatus is a topic's ledger as one node's witness sees it.
type LedgerStatus struct {
	// Size is the number of leaves in this node's copy.
	Size uint64 `json:"size"`
	// CheckpointSize, Epoch and Node describe the latest checkpoint this
	// node checked and accepted; Cosignatures counts its cosignatures.
	CheckpointSize  uint64 `json:"checkpoint_size"`
	CheckpointEpoch uint64 `json:"checkpoint_epoch"`
	CheckpointNode  string `json:"checkpoint_node,omitempty"`
	Cosignatures    int    `json:"cosignatures"`
	// CosignedSize is the size of the last checkpoint this node cosigned.
	CosignedSize uint64 `json:"cosigned_size"`
	// Alarms counts what this node refused: forged or inconsistent
	// checkpoints, a root differing from one seen before, epochs going back.
	Alarms    uint64 `json:"alarms"`
	LastAlarm string `json:"last_alarm,omitempty"`
	// Halted is set while the store's ledger no longer adds up against
	// this node's copy: the store lost writes the copy holds. The witness
	// checks and cosigns nothing of the topic until a re-anchor resolves
	// it (docs/ledger.md, "Lost writes and re-anchoring").
	Halted *LedgerHalt `json:"halted,omitempty"`
}

// LedgerHalt says why a topic's ledger halted on a node.
type LedgerHalt struct {
	// Check is the check that failed: one of the Halt* constants.
	Check string `json:"check"`
	// Agreed is the last seq on which the store's ledger and this node's
	// copy agree: a re-anchor resumes from it.
	Agreed  uint64 `json:"agreed"`
	Message string `json:"message"`
}

// The checks of LedgerHalt.
const (
	// HaltCursorBehind: the store's ledger ends before this node's copy
	// does (its cursor went back).
	HaltCursorBehind = "cursor_behind"
	// HaltLeafMismatch: the store holds another leaf than this node's
	// copy at a seq (the store lost writes, then took others).
	HaltLeafMismatch = "leaf_mismatch"
	// HaltCheckpointLost: a checkpoint this node accepted is no longer in
	// the store.
	HaltCheckpointLost = "checkpoint_lost"
)

// Problem is one reason a node is not ready to do its job.
type Problem struct {
	// Kind is one of the Problem* constants.
	Kind string `json:"kind"`
	// Topic is the topic concerned, if any.
	Topic   string `json:"topic,omitempty"`
	Message string `json:"message"`
}

// The kinds of Problem.
const (
	ProblemStore     = "store"     // the store does not answer
	ProblemHeartbeat = "heartbeat" // the node's membership heartbeats fail
	ProblemStalled   = "stalled"   // a topic this node publishes does not advance
	ProblemLedger    = "ledger"    // the witness raised an alarm on a topic
	// ProblemNotify: the store's change notifications (Redis pub/sub)
	// are lost and not re-established.
	ProblemNotify = "notifications"
	// ProblemLease: the node's node-lease renewals fail (its lease is
	// not trusted), so it publishes nothing.
	ProblemLease = "lease"
)
