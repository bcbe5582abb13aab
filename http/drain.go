package http

import (
	nethttp "net/http"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// drain serves POST /v1/drain (hand every topic of this node over and take
// none back, before a planned stop) and DELETE /v1/drain (race again).
func (s *Server) drain(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.cfg.Drain == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeUnavailable, "drain not available on this server"))
		return
	}
	d := s.cfg.Drain(r.Method == nethttp.MethodPost)
	s.logFor(r).Info("drain", "draining", d.Draining, "leases", d.Leases)
	writeJSON(w, nethttp.StatusOK, d)
}
