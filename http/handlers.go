package http

import (
	"context"
	"errors"
	"io"
	"math"
	nethttp "net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/wire"
)

// Limits of the read endpoints.
const (
	DefaultItemsLimit     = 100
	MaxItemsLimit         = 1000
	DefaultHandoversLimit = 20
	MaxHandoversLimit     = 1000
)

// topic reads and checks the {topic} path value.
func (s *Server) topic(w nethttp.ResponseWriter, r *nethttp.Request) (string, bool) {
	topic := r.PathValue("topic")
	if err := baton.ValidTopic(topic); err != nil {
		s.writeError(w, r, err)
		return "", false
	}
	return topic, true
}

func (s *Server) postItems(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	if err := jsonBody(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.cors.mayWrite(r) {
		s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "origin %s may not publish (see --cors-origins)", clip(r.Header.Get("Origin"), 128)))
		return
	}
	body, ok := s.publishBody(w, r)
	if !ok {
		return
	}
	ups, single, err := decodeUpdates(body, s.cfg.MaxBatch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.AdmitTopic != nil {
		if err := s.cfg.AdmitTopic(r.Context(), topic); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	receipts, err := s.cfg.Append(r.Context(), topic, ups)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := wire.PublishResponse{Items: receipts}
	if single && len(resp.Items) == 1 {
		resp.Receipt = &resp.Items[0]
	}
	if s.cfg.Holder != nil {
		if addr, ok := s.cfg.Holder(topic); ok {
			w.Header().Set(wire.HolderHeader, addr)
		}
	}
	writePublishResponse(w, nethttp.StatusCreated, resp)
}

// publishBody reads a publish request's body, at most MaxBody bytes
// within ReadTimeout, or answers the error and reports false.
func (s *Server) publishBody(w nethttp.ResponseWriter, r *nethttp.Request) ([]byte, bool) {
	if r.ContentLength > s.cfg.MaxBody {
		s.writeError(w, r, wire.Errorf(baton.CodeTooLarge, "body larger than %d bytes", s.cfg.MaxBody))
		return nil, false
	}
	_ = nethttp.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		var mbe *nethttp.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, wire.Errorf(baton.CodeTooLarge, "body larger than %d bytes", s.cfg.MaxBody))
			return nil, false
		}
		s.writeError(w, r, baton.Invalidf("body", "read: %v", err))
		return nil, false
	}
	return body, true
}

// boundBody keeps a request body from holding its connection: net/http
// reads what a handler left of a body, with no deadline, before it answers,
// so a body declared and never sent held the connection forever. A POST
// or PUT body must arrive within ReadTimeout; any other method takes no body, and
// one that declares a body is refused and its connection closed. It
// reports whether the request may go on. HTTP/2 is left alone: a stream
// the handler leaves is reset, not read, and a client may leave a GET's
// stream open after its headers (its length is then unknown, -1).
func (s *Server) boundBody(w nethttp.ResponseWriter, r *nethttp.Request) bool {
	if r.ContentLength == 0 || r.ProtoMajor != 1 {
		return true
	}
	_ = nethttp.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	if r.Method == nethttp.MethodPost || r.Method == nethttp.MethodPut {
		return true
	}
	w.Header().Set("Connection", "close")
	s.writeError(w, r, baton.Invalidf("body", "a %s request takes no body", r.Method))
	return false
}

// readBody reads the request body, at most max bytes. A body that says
// its length is read into one buffer of that size, not grown by doubling
// (the ingest path's largest copy).
func readBody(w nethttp.ResponseWriter, r *nethttp.Request, max int64) ([]byte, error) {
	rd := nethttp.MaxBytesReader(w, r.Body, max)
	if n := r.ContentLength; n > 0 && n <= max {
		buf := make([]byte, n)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(rd)
}

func (s *Server) listItems(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	after, err := queryUint(r, "after", 0, baton.MaxSeq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := queryLimit(r, DefaultItemsLimit, MaxItemsLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ps, err := s.cfg.Store.Published(r.Context(), topic, after, limit)
	if errors.Is(err, baton.ErrTrimmed) {
		s.writeError(w, r, s.gone(r.Context(), topic, after, err))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := wire.ItemsResponse{Items: ps, NextAfter: after}
	if resp.Items == nil {
		resp.Items = []baton.Published{}
	}
	if len(ps) > 0 {
		resp.NextAfter = ps[len(ps)-1].Seq
	}
	writeJSON(w, nethttp.StatusOK, resp)
}

// gone describes a trimmed position with the earliest seq still kept.
func (s *Server) gone(ctx context.Context, topic string, after uint64, err error) error {
	info, ierr := s.cfg.Store.Topic(ctx, topic)
	if ierr != nil {
		return err
	}
	e := wire.Errorf(baton.CodeGone, "position after %d is no longer kept", after)
	e.Earliest = info.FirstSeq
	return e
}

// listTopics answers a page of the topics the caller may read, in name
// order, after the topic named by ?after; with ?status=true (the admin
// right) each one's status too, read for this page only.
func (s *Server) listTopics(w nethttp.ResponseWriter, r *nethttp.Request) {
	after, err := queryAfter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := queryLimit(r, wire.DefaultTopicsLimit, wire.MaxTopicsLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	withStatus, err := queryBool(r, "status")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if withStatus && !s.may(r, auth.Admin, "") {
		s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "topic statuses (?status=true) need the admin right"))
		return
	}
	if withStatus && s.cfg.TopicStatuses == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeUnavailable, "status not available on this server"))
		return
	}
	resp, err := s.topicPage(r.Context(), r, after, limit, withStatus)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, resp)
}

// topicPage is the page of at most limit topics after after, in name
// order, among those r's caller may read; with withStatus, each one's
// status too (the caller's admin right is checked before).
func (s *Server) topicPage(ctx context.Context, r *nethttp.Request, after string, limit int, withStatus bool) (wire.TopicsResponse, error) {
	topics, err := s.cfg.Store.Topics(ctx)
	if err != nil {
		return wire.TopicsResponse{}, err
	}
	topics = slices.Clone(topics)
	if !s.may(r, auth.Admin, "") {
		topics = slices.DeleteFunc(topics, func(t string) bool { return !s.may(r, auth.Subscribe, t) })
	}
	slices.Sort(topics)
	page, next := wire.PageTopics(topics, after, limit)
	resp := wire.TopicsResponse{Topics: append([]string{}, page...), Next: next}
	if withStatus {
		if resp.Statuses, err = s.cfg.TopicStatuses(ctx, page); err != nil {
			return wire.TopicsResponse{}, err
		}
	}
	return resp, nil
}

func (s *Server) getTopic(w nethttp.ResponseWriter, r *nethttp.Request) {
	serveTopicRead(s, w, r, func(ctx context.Context, topic string) (baton.TopicInfo, error) {
		info, err := s.cfg.Store.Topic(ctx, topic)
		if errors.Is(err, baton.ErrNotFound) {
			// Topics need no creation: one never used is empty.
			return baton.TopicInfo{Topic: topic}, nil
		}
		return info, err
	})
}

func (s *Server) listHandovers(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	limit, err := queryLimit(r, DefaultHandoversLimit, MaxHandoversLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recs, err := s.cfg.Store.Handovers(r.Context(), topic, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, wire.HandoversResponse{Handovers: handovers(recs)})
}

// handovers are recs as the API shows them, with the hand-over time.
func handovers(recs []baton.ReleaseRecord) []wire.Handover {
	out := make([]wire.Handover, len(recs))
	for i, rec := range recs {
		out[i] = wire.Handover{ReleaseRecord: rec}
		if d := rec.Handover(); d >= 0 {
			ms := math.Round(float64(d)/float64(time.Microsecond)) / 1000
			out[i].HandoverMS = &ms
		}
	}
	return out
}

func (s *Server) getLock(w nethttp.ResponseWriter, r *nethttp.Request) {
	serveTopicRead(s, w, r, s.cfg.Store.Lock)
}

func (s *Server) getCursor(w nethttp.ResponseWriter, r *nethttp.Request) {
	serveTopicRead(s, w, r, s.cfg.Store.Cursor)
}

// status answers the node's summary and, with ?topics=N, the status of
// its first N topics: by default none, so that the answer costs the same
// few store reads however many topics there are (GET /v1/topics pages
// through them).
func (s *Server) status(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.cfg.Status == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeUnavailable, "status not available on this server"))
		return
	}
	n, err := queryUint(r, "topics", 0, wire.MaxTopicsLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.nodeStatus(r.Context(), int(n))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, nethttp.StatusOK, st)
}

// nodeStatus is the node's status as the API shows it: Config.Status with
// its first topics, and who may call this node.
func (s *Server) nodeStatus(ctx context.Context, topics int) (wire.Status, error) {
	st, err := s.cfg.Status(ctx, topics)
	if err != nil {
		return st, err
	}
	if st.Topics == nil {
		st.Topics = []baton.TopicStatus{}
	}
	st.Access = baton.AccessOpen
	if s.cfg.Auth != nil {
		st.Access = baton.AccessTokens
	}
	return st, nil
}

// metrics serves the node's metrics (Config.Metrics), for Prometheus.
func (s *Server) metrics(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.cfg.Metrics == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeNotFound, "this server exports no metrics"))
		return
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

// healthz answers 200 while the process serves HTTP: liveness only. Its
// Baton-Instance header names the process (Config.Instance).
func (s *Server) healthz(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.cfg.Instance != "" {
		w.Header().Set(wire.InstanceHeader, s.cfg.Instance)
	}
	writeJSON(w, nethttp.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only if the store answers a ping within ReadyTimeout
// and the node's status (Config.Status) names no problem: else 503, with
// the problems (a stalled topic, failing heartbeats, a witness alarm).
func (s *Server) readyz(w nethttp.ResponseWriter, r *nethttp.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	notReady := func(ps []baton.Problem) {
		kinds := make([]string, len(ps))
		for i, p := range ps {
			kinds[i] = p.Kind
			if p.Topic != "" {
				kinds[i] += " (" + p.Topic + ")"
			}
		}
		s.logFor(r).Warn("http: not ready", "problems", kinds)
		e := wire.Errorf(baton.CodeUnavailable, "not ready: %s", strings.Join(kinds, ", "))
		e.RequestID = requestID(r)
		writeJSON(w, nethttp.StatusServiceUnavailable, wire.NotReady{Error: e, Problems: ps})
	}
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.logFor(r).Warn("http: not ready: store ping failed", "err", err)
		notReady([]baton.Problem{{Kind: baton.ProblemStore, Message: "store unavailable"}})
		return
	}
	if s.cfg.Status != nil {
		st, err := s.cfg.Status(ctx, 0)
		if err != nil {
			s.logFor(r).Warn("http: not ready: status", "err", err)
			notReady([]baton.Problem{{Kind: baton.ProblemStore, Message: "store unavailable"}})
			return
		}
		if len(st.Problems) > 0 {
			notReady(st.Problems)
			return
		}
	}
	writeJSON(w, nethttp.StatusOK, map[string]string{"status": "ready"})
}

// queryUint reads a non-negative integer query parameter: def if absent,
// 400 if malformed or above max.
func queryUint(r *nethttp.Request, name string, def, max uint64) (uint64, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return def, nil
	}
	return parseSeq(name, q.Get(name), max)
}

// queryAfter reads the after of a page of topics: a topic name, or "" for
// the first page.
func queryAfter(r *nethttp.Request) (string, error) {
	after := r.URL.Query().Get("after")
	if after != "" {
		if err := baton.ValidTopic(after); err != nil {
			return "", baton.Invalidf("after", "not a topic name: %v", err)
		}
	}
	return after, nil
}

// queryBool reads a boolean query parameter (true, false, 1, 0): false if
// absent, 400 if malformed.
func queryBool(r *nethttp.Request, name string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, nil
	}
	switch q.Get(name) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, baton.Invalidf(name, "want true or false, got %q", clip(q.Get(name), 32))
}

// queryLimit reads a limit in [1, max], def if absent.
func queryLimit(r *nethttp.Request, def, max uint64) (int, error) {
	n, err := queryUint(r, "limit", def, max)
	if err == nil && n == 0 {
		err = baton.Invalidf("limit", "at least 1")
	}
	return int(n), err
}

// parseSeq parses a decimal uint64 in [0, max]; no sign, no spaces.
func parseSeq(field, s string, max uint64) (uint64, error) {
	if s == "" || s[0] == '+' {
		return 0, baton.Invalidf(field, "want a non-negative integer")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, baton.Invalidf(field, "want a non-negative integer, got %q", clip(s, 32))
	}
	if n > max {
		return 0, baton.Invalidf(field, "at most %d", max)
	}
	return n, nil
}
