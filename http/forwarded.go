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
// limits and topic admission; this one checks that the request comes from
// this machine and carries the nodes' signature (forward.Verify), decodes and validates the body as POST .../items does,
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
	// Before the body is read, what costs nothing to check: the nodes
	// that forward share this machine (forward.Loopback) and send no
	// Origin (a web page always does), and a signature's form and
	// deadline. Whoever fails these has no body read for them.
	switch {
	case !forward.Loopback(r.RemoteAddr):
		s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "forwarded appends come from nodes on this machine"))
		return
	case r.Header.Get("Origin") != "":
		s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "forwarded appends come from nodes, not web pages"))
		return
	}
	h, now := r.Header.Get(forward.Header), time.Now()
	if err := forward.Plausible(h, now); err != nil {
		s.writeError(w, r, wire.Errorf(baton.CodeUnauthorized, "%v", err))
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
	_, deadline, err := forward.Verify(s.cfg.ForwardKey, h, topic, body, now)
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
