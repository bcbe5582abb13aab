package wire

// ReanchorRequest is the body of POST /v1/topics/{topic}/ledger/reanchor
// (docs/api.md, "Ledger recovery"): re-anchor the topic's ledger from
// seq From, the last seq on which the store and the witnesses' copies
// agree, for Reason (one line of printable text).
type ReanchorRequest struct {
	From   *uint64 `json:"from"`
	Reason string  `json:"reason"`
}
