package http

import (
	"context"
	nethttp "net/http"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/forward"
	"github.com/baton-pub/baton/wire"
)

// postForwarded appends what another node forwarded to this one, the
// topic's lease holder (forward.Path; docs/design.md, "Appends forwarded
// to the lease holder"). The forwarding node checked the client's token,
// limits and topic admission; this one checks the nodes' signature
// (forward.Verify), decodes and validates the body as POST .../items does,
// and appends through its own store, never forwarding again. It appends
// nothing past the signed deadline: the forwarder has given up by then.
func (s *Server) postForwarded(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.cfg.ForwardKey == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeNotFound, "no route %s %s", r.Method, clip(r.URL.Path, 256)))
		return
	}
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	if r.Header.Get("Origin") != "" {
		// A node sends no Origin; a web page always does.
		s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "forwarded appends come from nodes, not web pages"))
		return
	}
	if err := jsonBody(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	body, ok := s.publishBody(w, r)
	if !ok {
		return
	}
	_, deadline, err := forward.Verify(s.cfg.ForwardKey, r.Header.Get(forward.Header), topic, body, time.Now())
	if err != nil {
		s.writeError(w, r, wire.Errorf(baton.CodeUnauthorized, "%v", err))
		return
	}
	ups, _, err := decodeUpdates(body, s.cfg.MaxBatch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	receipts, err := s.cfg.Store.Append(ctx, topic, ups)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writePublishResponse(w, nethttp.StatusCreated, wire.PublishResponse{Items: receipts})
}
