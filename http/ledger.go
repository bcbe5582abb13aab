package http

import (
	nethttp "net/http"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/wire"
)

// Ledger is the node's copy of the ledger that the ledger routes read
// (*ledger.Witness). Proofs are served from it without touching the store.
type Ledger interface {
	Checkpoint(topic string) (baton.Checkpoint, error)
	Proof(topic string, seq uint64) (ledger.Proof, error)
	Consistency(topic string, from, to uint64) (ledger.Consistency, error)
}

var _ Ledger = (*ledger.Witness)(nil)

// CheckpointResponse answers GET /v1/topics/{topic}/checkpoint: the latest
// checkpoint this node checked and accepted. Note is the signed note with
// every cosignature line, ready for any signed-note verifier.
type CheckpointResponse struct {
	Topic        string         `json:"topic"`
	Size         uint64         `json:"size"`
	Root         baton.Hash     `json:"root"`
	Epoch        uint64         `json:"epoch"`
	Node         string         `json:"node"`
	At           time.Time      `json:"at"`
	Note         string         `json:"note"`
	Cosignatures []CosignerInfo `json:"cosignatures"`
}

// CosignerInfo names one cosigner of a checkpoint.
type CosignerInfo struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// ledgerRoutes are registered by NewServer.
func (s *Server) ledgerRoutes() map[string]route {
	return map[string]route{
		"/v1/topics/{topic}/checkpoint":        {"GET": s.getCheckpoint},
		"/v1/topics/{topic}/items/{seq}/proof": {"GET": s.getProof},
		"/v1/topics/{topic}/consistency":       {"GET": s.getConsistency},
		"/v1/topics/{topic}/ledger/diagnose":   {"GET": s.getDiagnosis},
		"/v1/topics/{topic}/ledger/reanchor":   {"POST": s.postReanchor},
	}
}

func (s *Server) ledger(w nethttp.ResponseWriter, r *nethttp.Request) (string, bool) {
	topic, ok := s.topic(w, r)
	if !ok {
		return "", false
	}
	if s.cfg.Ledger == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeNotFound, "this node runs without a ledger"))
		return "", false
	}
	return topic, true
}

func (s *Server) getCheckpoint(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.ledger(w, r)
	if !ok {
		return
	}
	cp, err := s.cfg.Ledger.Checkpoint(topic)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := CheckpointResponse{Topic: cp.Topic, Size: cp.Size, Root: cp.Root, Epoch: cp.Epoch, Node: cp.Node, At: cp.At,
		Note: string(ledger.WithCosignatures(cp)), Cosignatures: []CosignerInfo{}}
	for _, cs := range cp.Cosignatures {
		resp.Cosignatures = append(resp.Cosignatures, CosignerInfo{Node: cs.Node, At: cs.At})
	}
	writeJSON(w, nethttp.StatusOK, resp)
}

func (s *Server) getProof(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.ledger(w, r)
	if !ok {
		return
	}
	seq, err := parseSeq("seq", r.PathValue("seq"), baton.MaxSeq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.cfg.Ledger.Proof(topic, seq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, p)
}

func (s *Server) getConsistency(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.ledger(w, r)
	if !ok {
		return
	}
	from, err := queryUint(r, "from", 0, baton.MaxSeq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !r.URL.Query().Has("from") {
		s.writeError(w, r, baton.Invalidf("from", "missing"))
		return
	}
	to, err := queryUint(r, "to", 0, baton.MaxSeq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.cfg.Ledger.Consistency(topic, from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, c)
}
