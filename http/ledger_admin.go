package http

import (
	"cmp"
	"context"
	nethttp "net/http"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/wire"
)

// LedgerAdmin is what the ledger's recovery routes ask of the node's
// ledger (*ledger.Witness): where the store and this node's copy part,
// and a signed re-anchor (docs/ledger.md, "Lost writes and
// re-anchoring"). Config.Ledger serves them if it implements it.
type LedgerAdmin interface {
	Diagnose(ctx context.Context, topic string) (ledger.Diagnosis, error)
	Reanchor(ctx context.Context, topic string, from uint64, by, reason string) (ledger.ReanchorBody, error)
}

var _ LedgerAdmin = (*ledger.Witness)(nil)

// maxReanchorBody bounds the body of POST .../ledger/reanchor.
const maxReanchorBody = 4 << 10

func (s *Server) ledgerAdmin(w nethttp.ResponseWriter, r *nethttp.Request) (string, LedgerAdmin, bool) {
	topic, ok := s.ledger(w, r)
	if !ok {
		return "", nil, false
	}
	a, ok := s.cfg.Ledger.(LedgerAdmin)
	if !ok {
		s.writeError(w, r, wire.Errorf(baton.CodeNotFound, "this node's ledger has no recovery routes"))
		return "", nil, false
	}
	return topic, a, true
}

// getDiagnosis serves GET /v1/topics/{topic}/ledger/diagnose.
func (s *Server) getDiagnosis(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, a, ok := s.ledgerAdmin(w, r)
	if !ok {
		return
	}
	d, err := a.Diagnose(r.Context(), topic)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, d)
}

// postReanchor serves POST /v1/topics/{topic}/ledger/reanchor: this node
// signs and stores the re-anchor, naming the token's subject as who
// asked ("operator" on a node without tokens).
func (s *Server) postReanchor(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, a, ok := s.ledgerAdmin(w, r)
	if !ok {
		return
	}
	body, err := readJSON(w, r, maxReanchorBody)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in *wire.ReanchorRequest
	if err := decodeObject(body, &in); err != nil || in == nil || in.From == nil {
		s.writeError(w, r, cmp.Or(err, baton.Invalidf("body", `not a re-anchor object {"from": SEQ, "reason": "..."}`)))
		return
	}
	if err := ledger.ValidReason(in.Reason); err != nil {
		s.writeError(w, r, err)
		return
	}
	by := "operator"
	if g := callerOf(r).grant; g != nil && g.Subject != "" {
		by = g.Subject
	}
	b, err := a.Reanchor(r.Context(), topic, *in.From, by, in.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.logFor(r).Warn("ledger re-anchored", "topic", topic, "seq", b.Seq, "lost_size", b.LostSize, "by", b.By)
	writeJSON(w, nethttp.StatusOK, b)
}
