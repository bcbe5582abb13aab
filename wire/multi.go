package wire

import (
	"encoding/json"

	"github.com/baton-pub/baton"
)

// TopicItem is the data of an "item" event of a multi-topic stream (GET
// /v1/events) and, with Type "item", a WebSocket item frame: an Item with
// its topic. The fields after topic are byte for byte a one-topic
// stream's.
type TopicItem struct {
	Type  string `json:"type,omitempty"`
	Topic string `json:"topic"`
	Item
}

// TopicReset is the data of a "reset" event of a multi-topic stream and
// the WebSocket reset frame: topic's position is no longer kept, and the
// topic continues at Earliest.
type TopicReset struct {
	Type     string `json:"type,omitempty"`
	Topic    string `json:"topic"`
	Earliest uint64 `json:"earliest"`
}

// Frame types of the WebSocket protocol (/v1/ws, docs/api.md
// "WebSocket"). A text message holds one or more frames, JSON objects
// separated by "\n".
const (
	// Client frames.
	FrameSubscribe   = "subscribe"
	FrameUnsubscribe = "unsubscribe"
	FramePublish     = "publish"
	// Server frames; "item", "reset", "deleted" and "auth" are the event
	// types of the event stream.
	FrameSubscribed = "subscribed"
	FrameAck        = "ack"
	FrameError      = "error"
)

// ClientFrame is a frame a WebSocket client sends.
type ClientFrame struct {
	Type string `json:"type"`
	// Ref is the client's reference, echoed in the answer (ack,
	// subscribed, error); at most 128 bytes.
	Ref string `json:"ref,omitempty"`
	// Topic is a topic name or, for subscribe and unsubscribe, a pattern
	// ("quotes.*", "*").
	Topic string `json:"topic"`
	// After is where a subscription to a named topic starts (0: the
	// beginning, as for a one-topic stream).
	After uint64 `json:"after,omitempty"`
	// Positions are where the topics a pattern finds start (absent: 0).
	Positions map[string]uint64 `json:"positions,omitempty"`
	// Snapshot asks for a named topic's snapshot first ("snapshot"
	// frames, then "snapshot_end" with its seq; After must be 0).
	Snapshot bool `json:"snapshot,omitempty"`
	// Items are a publish's updates, as the body of POST
	// /v1/topics/{topic}/items.
	Items json.RawMessage `json:"items,omitempty"`
}

// Subscribed answers a subscribe: the subscription is open, and its items
// follow.
type Subscribed struct {
	Type  string `json:"type"`
	Ref   string `json:"ref,omitempty"`
	Topic string `json:"topic"`
}

// Ack answers a publish: one receipt per update, in order.
type Ack struct {
	Type  string          `json:"type"`
	Ref   string          `json:"ref,omitempty"`
	Topic string          `json:"topic"`
	Items []baton.Receipt `json:"items"`
}

// FrameErr is an error frame: the answer to a client frame that failed
// (with its ref and topic), or the reason a subscription or the socket
// ended. Error is the body of an HTTP error answer's "error".
type FrameErr struct {
	Type  string `json:"type"`
	Ref   string `json:"ref,omitempty"`
	Topic string `json:"topic,omitempty"`
	Error *Error `json:"error"`
}

// ServerFrame is any server frame as a client decodes it: Type says which
// fields are set.
type ServerFrame struct {
	Type  string `json:"type"`
	Ref   string `json:"ref,omitempty"`
	Topic string `json:"topic,omitempty"`
	Item
	Earliest uint64          `json:"earliest,omitempty"`
	Items    json.RawMessage `json:"items,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	// Code and Message are an "auth" frame's.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}
