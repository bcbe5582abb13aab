package http

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// maxRetentionBody bounds the body of PUT /v1/topics/{topic}/retention.
const maxRetentionBody = 4 << 10

// deleteTopic serves DELETE /v1/topics/{topic}[?ledger=keep|delete]: the
// topic goes in one atomic step of the store (baton.Lifecycle); its ledger
// stays unless ledger=delete says otherwise (docs/api.md, "Topic
// lifecycle"). Config.TopicDeleted then ends this node's terminals of it
// at once; other nodes end theirs when they see it gone.
func (s *Server) deleteTopic(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	var opts baton.DeleteOptions
	switch v := r.URL.Query().Get("ledger"); v {
	case "", "keep":
	case "delete":
		opts.Ledger = true
	default:
		s.writeError(w, r, baton.Invalidf("ledger", "%q: want keep or delete", clip(v, 64)))
		return
	}
	d, err := s.cfg.Store.DeleteTopic(r.Context(), topic, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("topic deleted", "topic", topic, "items", d.Items, "unpublished", d.Unpublished,
		"epoch", d.Epoch, "ledger_size", d.LedgerSize, "ledger_deleted", d.LedgerDeleted)
	if s.cfg.TopicDeleted != nil {
		s.cfg.TopicDeleted(topic)
	}
	writeJSON(w, nethttp.StatusOK, wire.DeleteResponse{Deleted: d})
}

// getRetention serves GET /v1/topics/{topic}/retention.
func (s *Server) getRetention(w nethttp.ResponseWriter, r *nethttp.Request) {
	serveTopicRead(s, w, r, func(ctx context.Context, topic string) (wire.RetentionResponse, error) {
		rt, err := s.cfg.Store.Retention(ctx, topic)
		return s.retentionResponse(topic, rt), err
	})
}

// serveTopicRead answers a GET of one topic's state: read's answer as JSON,
// or its error.
func serveTopicRead[T any](s *Server, w nethttp.ResponseWriter, r *nethttp.Request, read func(ctx context.Context, topic string) (T, error)) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	v, err := read(r.Context(), topic)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, v)
}

// putRetention serves PUT /v1/topics/{topic}/retention: the body replaces
// the topic's retention ({} goes back to the node's defaults).
func (s *Server) putRetention(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	body, err := readJSON(w, r, maxRetentionBody)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rt, err := decodeRetention(body, topic)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Store.SetRetention(r.Context(), topic, rt); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, s.retentionResponse(topic, rt))
}

func (s *Server) retentionResponse(topic string, rt baton.Retention) wire.RetentionResponse {
	items, age := rt.Effective(s.cfg.Retain, s.cfg.RetainAge)
	return wire.RetentionResponse{Topic: topic, Retention: wire.RetentionOf(rt), Effective: wire.EffectiveOf(items, age)}
}

// decodeRetention reads and checks the body of PUT
// /v1/topics/{topic}/retention: one wire.Retention object, no other field.
func decodeRetention(body []byte, topic string) (baton.Retention, error) {
	var in *wire.Retention
	if err := decodeObject(body, &in); err != nil || in == nil {
		return baton.Retention{}, cmp.Or(err, baton.Invalidf("body", "not %s", retentionShape))
	}
	return in.Parse(topic)
}

const retentionShape = `a retention object {"items": N, "age": "24h"}`

// readJSON reads the body of an admin write: declared JSON (jsonBody),
// at most max bytes.
func readJSON(w nethttp.ResponseWriter, r *nethttp.Request, max int64) ([]byte, error) {
	if err := jsonBody(r); err != nil {
		return nil, err
	}
	body, err := readBody(w, r, max)
	if err != nil {
		return nil, wire.Errorf(baton.CodeTooLarge, "body larger than %d bytes", max)
	}
	return body, nil
}

// decodeObject decodes body into out (a pointer to a pointer to a
// struct): one JSON value with no field out does not have, and nothing
// after it. A body that does not fit is ErrInvalid on "body".
func decodeObject(body []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return baton.Invalidf("body", "not the object this route takes (%s)", clip(err.Error(), 128))
	}
	if _, err := dec.Token(); err != io.EOF {
		return baton.Invalidf("body", "more than one JSON value")
	}
	return nil
}
