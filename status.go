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
	Topics    []TopicStatus `json:"topics"`
	Members   []Member      `json:"members"`
}

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
}
