// Package wire is the format of Baton's HTTP API, written once for the
// server (package http and the hub's frames), the Go SDK (package client),
// the checker and the bench: the JSON bodies of requests, answers and
// event data, and the reader of the event stream (ReadEvents). docs/api.md
// describes the API; the shapes here are its reference in code.
//
// An append's request body is a baton.Update or a list of them, and each
// receipt is a baton.Receipt: those are domain types whose JSON is the wire
// format already.
package wire

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/baton-pub/baton"
)

// PublishResponse answers POST /v1/topics/{topic}/items: one receipt per
// update, in order. For a body that was a lone object, the receipt's fields
// are also at the top level.
type PublishResponse struct {
	*baton.Receipt
	Items []baton.Receipt `json:"items"`
}

// ItemsResponse answers GET /v1/topics/{topic}/items.
type ItemsResponse struct {
	Items []baton.Published `json:"items"`
	// NextAfter is the after to poll with next: the last item's seq, or the
	// asked after if there was none.
	NextAfter uint64 `json:"next_after"`
}

// Handover is a release record with the time the topic had no holder.
type Handover struct {
	baton.ReleaseRecord
	// HandoverMS is SuccessorAt - At in milliseconds, null while no
	// successor has acquired.
	HandoverMS *float64 `json:"handover_ms"`
}

// HandoversResponse answers GET /v1/topics/{topic}/handovers.
type HandoversResponse struct {
	Handovers []Handover `json:"handovers"`
}

// Event types of the event stream (GET /v1/topics/{topic}/events).
const (
	EventItem  = "item"
	EventReset = "reset"
	EventAuth  = "auth"
	// EventSnapshot carries one Item of the snapshot a stream opened with
	// ?snapshot=1 sends first (no event id); EventSnapshotEnd ends it (id
	// and SnapshotEnd.Seq: the seq the live stream continues after).
	EventSnapshot    = "snapshot"
	EventSnapshotEnd = "snapshot_end"
)

// SnapshotResponse answers GET /v1/topics/{topic}/snapshot: a page of the
// topic's latest item per data id, in byte order of id, as of Seq.
type SnapshotResponse struct {
	// Seq is the topic's cursor when the page was read: every item's seq
	// is at most Seq. Pages read while commits go on name later seqs
	// (docs/api.md, "Snapshots", says how to stitch them).
	Seq   uint64            `json:"seq"`
	Items []baton.Published `json:"items"`
	// NextAfterID, set when more ids may follow, is the after_id of the
	// next page.
	NextAfterID string `json:"next_after_id,omitempty"`
}

// SnapshotEnd is the data of a "snapshot_end" event: the snapshot sent
// before it is the topic's state as of Seq; the live stream goes on after.
type SnapshotEnd struct {
	// Topic is set on a stream of many topics: the topic whose snapshot
	// ended.
	Topic string `json:"topic,omitempty"`
	Seq   uint64 `json:"seq"`
}

// Drain is the answer of POST and DELETE /v1/drain: whether the node is
// drained (holds no lease and races for none) and how many leases it still
// held when it answered (they are being handed over).
type Drain struct {
	Node     string `json:"node"`
	Draining bool   `json:"draining"`
	Leases   int    `json:"leases"`
}

// Auth is the data of an "auth" event, the last of a stream whose token
// expired: the client gets a new token and resumes after the last item it
// received (Last-Event-ID).
type Auth struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Item is the data of an "item" event: a published item as terminals see
// it. Value is the stored JSON byte for byte, so that a terminal can check
// Hash (baton.HashItem).
type Item struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Value     json.RawMessage `json:"value"`
	Hash      baton.Hash      `json:"hash"`
	Epoch     uint64          `json:"epoch"`
	Publisher string          `json:"publisher"`
	MsgID     string          `json:"msg_id"`
	// Deleted marks a tombstone: the id left the topic's snapshot. Absent
	// (false) for every other item.
	Deleted bool `json:"deleted,omitempty"`
}

// ItemOf is p as an "item" event carries it.
func ItemOf(p baton.Published) Item {
	return Item{Seq: p.Seq, ID: p.ID, Value: p.Value, Hash: p.Hash, Epoch: p.Epoch, Publisher: p.Publisher, MsgID: p.MsgID, Deleted: p.Deleted}
}

// Reset is the data of a "reset" event: the terminal's position is no
// longer kept and the stream continues at Earliest.
type Reset struct {
	// Earliest is the earliest seq still kept.
	Earliest uint64 `json:"earliest"`
}

// NotReady is the answer of GET /readyz when the node is not ready: an
// error body with, beside it, every problem found.
type NotReady struct {
	Error    *Error          `json:"error"`
	Problems []baton.Problem `json:"problems"`
}

// Error is the body of every error answer, {"error": {...}}. The server
// answers with it; the SDK returns it, with Status set, for a 4xx or 5xx
// answer.
type Error struct {
	// Status is the answer's HTTP status, as a client received it; the
	// server derives it from Code.
	Status int `json:"-"`
	// Code is one of the baton.Code* constants.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the bad input, e.g. "items[3].id", when known.
	Field string `json:"field,omitempty"`
	// Earliest is the earliest seq still kept, on a "gone" error.
	Earliest uint64 `json:"earliest,omitempty"`
	// RequestID is the request's id (its X-Request-Id header), also in
	// every log line of the request: quote it when reporting the error.
	RequestID string `json:"request_id,omitempty"`
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Temporary reports whether a client's retry may succeed: a 5xx or 429
// answer.
func (e *Error) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// Errorf returns an *Error with code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorResponse is the JSON envelope of an error answer.
type ErrorResponse struct {
	Error *Error `json:"error"`
}

// InstanceHeader, in the answer of GET /healthz, names the serving
// process: a random name drawn at its start. The nodes' peer watch
// (node/peers.go) compares it to tell a restarted process from the one it
// watched.
const InstanceHeader = "Baton-Instance"

// HolderHeader, in the answer of a publish (POST .../items) that a node
// forwarded to the topic's lease holder on its machine, is where that
// holder serves (host:port, as the nodes advertise it): a client that
// knows a node at that address sends its next appends of the topic there,
// sparing each a hop between nodes (client.Client does; docs/api.md).
const HolderHeader = "Baton-Holder"

// Limits of GET /v1/topics (and of the topics of GET /v1/status).
const (
	DefaultTopicsLimit = 100
	MaxTopicsLimit     = 1000
)

// Status answers GET /v1/status: the node, its topic counts and, with
// ?topics=N, the first N of its topics in name order; GET
// /v1/topics?status=true pages through them (after TopicsNext).
type Status struct {
	baton.NodeStatus
	Counts TopicCounts `json:"counts"`
	// TopicsNext, set when more topics follow those in Topics, is the
	// `after` of the next page of GET /v1/topics.
	TopicsNext string `json:"topics_next,omitempty"`
}

// TopicCounts are the topics of a node's status, counted without reading
// each topic (docs/api.md, GET /v1/status).
type TopicCounts struct {
	// Topics is the number of topics in the store.
	Topics int `json:"topics"`
	// Publishing is the number of topics this node publishes.
	Publishing int `json:"publishing"`
	// Held is the number of leases the live members hold, as their last
	// heartbeats report them (at most Topics); Unheld is Topics - Held.
	Held   int `json:"held"`
	Unheld int `json:"unheld"`
}

// TopicsResponse answers GET /v1/topics: a page of topic names in name
// order and, with ?status=true, each one's status.
type TopicsResponse struct {
	Topics []string `json:"topics"`
	// Statuses are the statuses of Topics, in the same order (only with
	// ?status=true).
	Statuses []baton.TopicStatus `json:"statuses,omitempty"`
	// Next, set when more topics follow, is the `after` of the next page.
	Next string `json:"next,omitempty"`
}

// PageTopics returns the topics of sorted (in name order) that come after
// after, at most limit of them, and next: the last one returned if more
// follow, else "". It is the paging of GET /v1/topics and of the topics of
// GET /v1/status.
func PageTopics(sorted []string, after string, limit int) (page []string, next string) {
	i, found := slices.BinarySearch(sorted, after)
	if found {
		i++
	}
	page = sorted[i:]
	if len(page) > limit {
		page = page[:max(limit, 0)]
		if len(page) > 0 {
			next = page[len(page)-1]
		}
	}
	return page, next
}
