package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// WebSocket close codes of /v1/ws beyond the standard ones (docs/api.md,
// "WebSocket").
const (
	// wsCloseTokenExpired follows the "auth" frame of a socket whose
	// token expired: the client reconnects with a new token.
	wsCloseTokenExpired = 4001
)

// maxRefLen bounds a client frame's ref.
const maxRefLen = 128

// ws serves GET /v1/ws: the WebSocket protocol of docs/api.md
// ("WebSocket"). The handshake and the frames are github.com/gobwas/ws's;
// the connection is a wsConn (ws_conn.go). The socket is a stream of many
// topics like GET /v1/events (a multiSource of WebSocket frames, written by
// the same pool of stream.go), and its input is read when the poller
// reports some (ws_poll.go): an idle socket holds no goroutine. The
// reading goroutine serves subscribe, unsubscribe and publish frames, and
// writes acks and errors itself; items, resets, deletions and
// (un)subscribed answers are the stream's, in order for each topic.
func (s *Server) ws(w nethttp.ResponseWriter, r *nethttp.Request) {
	if !headerHas(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		len(r.Header.Get("Sec-WebSocket-Key")) != 24 || r.Header.Get("Sec-WebSocket-Version") != "13" {
		s.writeError(w, r, baton.Invalidf("Upgrade", "want a WebSocket upgrade (version 13)"))
		return
	}
	_, from, _ := auth.TokenFrom(r)
	if s.cfg.Auth != nil && from == "cookie" && !s.cors.mayCredential(r) {
		// A page of any origin can open a socket with the browser's
		// cookie, and no CORS check stops it reading: a cookie counts
		// only for the origins that may send credentials.
		s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "origin %s may not use the %s cookie (see --cors-origins); send access_token", clip(r.Header.Get("Origin"), 128), auth.CookieName))
		return
	}
	// Origins are checked above and in publish: every origin may read,
	// and only mayPublish ones publish.
	mayPublish := s.cors.mayWrite(r)
	a, ok := s.admitStream(w, r)
	if !ok {
		return
	}
	// The answer carries the headers set so far (the request id); no
	// subprotocol, no compression. The hijacked connection's buffers are
	// dropped once what the client sent with the handshake is taken.
	conn, rw, _, err := ws.HTTPUpgrader{Header: w.Header()}.Upgrade(r, w)
	if err != nil {
		a.release(s) // Upgrade answered
		if conn != nil {
			conn.Close()
		}
		s.debugFor(r, "http: websocket upgrade", "err", err)
		return
	}
	a.stopReq() // the socket outlives the handler
	answeredOnConn(w, nethttp.StatusSwitchingProtocols)
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		pre = bytes.Clone(b)
	}

	ctx := a.ctx
	m := newMultiSource(s.cfg.Hub, ctx, true)
	st := &eventStream{src: m, cancel: a.cancel, onEnd: a.onEnd, remote: r.RemoteAddr, reqID: requestID(r)}
	st.srv, _ = r.Context().Value(nethttp.ServerContextKey).(*nethttp.Server)
	g := callerOf(r).grant
	if g != nil && !g.Expires.IsZero() {
		st.expires = max(1, s.streams.now()+int64(time.Until(g.Expires)))
	}
	sock := &wsSocket{s: s, m: m, grant: g, mayPublish: mayPublish, ctx: ctx,
		reqID: requestID(r), origin: r.Header.Get("Origin")}
	c := &wsConn{conn: conn, poll: s.streams.poller(), wg: &s.streams.wg, timeout: s.cfg.WriteTimeout,
		readTimeout: s.cfg.ReadTimeout, pre: pre,
		rd: wsMessages{limit: s.cfg.MaxBody + 64<<10}, onMessage: sock.serveMessage,
		end: func(err error) { s.streams.end(st, err) }}
	sock.conn = c
	s.debugFor(r, "http: websocket opened", "remote", r.RemoteAddr)
	_, c.sliced = conn.(*net.TCPConn)
	s.streams.startPooled(st, c, c.sliced)
	c.poll.add(c)
}

// wsSocket is the protocol side of one socket: the client's frames.
type wsSocket struct {
	s          *Server
	conn       *wsConn
	m          *multiSource
	grant      *auth.Grant
	mayPublish bool
	ctx        context.Context // the stream's: ends with it
	reqID      string
	origin     string
}

// serveMessage serves the frames of one text message, a line each.
func (k *wsSocket) serveMessage(msg []byte) error {
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := k.serve(line); err != nil {
			return err
		}
	}
	return nil
}

// serve answers one client frame. Its error ends the socket; a bad frame
// gets an error frame and the socket goes on.
func (k *wsSocket) serve(line []byte) error {
	var f wire.ClientFrame
	if err := json.Unmarshal(line, &f); err != nil {
		return k.fail(f, baton.Invalidf("frame", "want a JSON object: %v", err))
	}
	if len(f.Ref) > maxRefLen {
		f.Ref = ""
		return k.fail(f, baton.Invalidf("ref", "longer than %d bytes", maxRefLen))
	}
	switch f.Type {
	case wire.FrameSubscribe:
		return k.fail(f, k.subscribe(f))
	case wire.FrameUnsubscribe:
		if !k.m.has(f.Topic) && !k.m.hasPattern(f.Topic) {
			return k.fail(f, wire.Errorf(baton.CodeNotFound, "not subscribed to %q", clip(f.Topic, 160)))
		}
		k.m.remove(f.Topic, f.Ref)
		return nil
	case wire.FramePublish:
		return k.publish(f)
	}
	return k.fail(f, baton.Invalidf("type", "want subscribe, unsubscribe or publish, got %q", clip(f.Type, 32)))
}

// subscribe checks and opens a subscription to a topic or a pattern.
func (k *wsSocket) subscribe(f wire.ClientFrame) error {
	if strings.Contains(f.Topic, "*") {
		p, err := auth.ParsePattern(f.Topic)
		if err != nil {
			return baton.Invalidf("topic", "%v", err)
		}
		if k.s.cfg.Auth != nil && !patternWithin(p, k.grant.Subscribe) {
			return wire.Errorf(baton.CodeForbidden, "the token may not subscribe to every topic pattern %q selects", p)
		}
		if k.m.hasPattern(f.Topic) {
			return wire.Errorf(baton.CodeConflict, "already subscribed to %q", f.Topic)
		}
		if n := k.m.patternCount(); n >= wire.MaxStreamPatterns {
			return wire.Errorf(baton.CodeTooLarge, "a socket takes at most %d patterns", wire.MaxStreamPatterns)
		}
		if len(f.Positions) > wire.MaxStreamTopics {
			return wire.Errorf(baton.CodeTooLarge, "positions of more than %d topics", wire.MaxStreamTopics)
		}
		for t, pos := range f.Positions {
			if !p.Match(t) || pos > baton.MaxSeq {
				return baton.Invalidf("positions", "topic %q: not selected by %q, or a position beyond %d", clip(t, 160), p, uint64(baton.MaxSeq))
			}
		}
		if f.Snapshot {
			if err := k.patternSnapshots(p, f.Positions, f.Ref); err != nil {
				return err
			}
		}
		return k.m.addPattern(p, f.Positions, f.Ref)
	}
	if err := baton.ValidTopic(f.Topic); err != nil {
		return err
	}
	if k.s.cfg.Auth != nil && !k.grant.Can(auth.Subscribe, f.Topic) {
		return wire.Errorf(baton.CodeForbidden, "the token may not subscribe to topic %q", f.Topic)
	}
	if f.After > baton.MaxSeq {
		return baton.Invalidf("after", "at most %d", uint64(baton.MaxSeq))
	}
	if f.Snapshot && f.After > 0 {
		return baton.Invalidf("snapshot", "a snapshot starts the topic after it: leave out after")
	}
	if !k.m.reserve(f.Topic) {
		if k.m.has(f.Topic) {
			return wire.Errorf(baton.CodeConflict, "already subscribed to %q", f.Topic)
		}
		return wire.Errorf(baton.CodeTooLarge, "a socket follows at most %d topics", wire.MaxStreamTopics)
	}
	// With a snapshot, "subscribed" follows "snapshot_end".
	return k.follow(f.Topic, f.After, f.Snapshot, "", f.Ref)
}

// follow subscribes topic, reserved in the socket's source, from after
// or, with snap, after its snapshot (snapshot.go), and hands the terminal
// to the source: named (from "") answered with ref, or found by the
// pattern from. On an error it gives the reservation up.
func (k *wsSocket) follow(topic string, after uint64, snap bool, from, ref string) error {
	var err error
	if snap {
		after, err = k.wsSnapshot(topic, ref)
	}
	var term *hub.Terminal
	if err == nil {
		term, err = k.s.cfg.Hub.Subscribe(k.ctx, topic, after)
	}
	if err != nil {
		k.m.unreserve(topic)
		return err
	}
	if from != "" {
		ref = "" // a found topic gets no answer of its own
	}
	k.m.add(term, from == "", from, ref, true)
	return nil
}

// patternSnapshots starts each topic that p selects now, and that pos
// does not place, with its snapshot, as a named subscription with a
// snapshot does: its "snapshot" frames and "snapshot_end" (with the
// pattern's ref), then its items after. Topics the pattern finds later
// are new: they start at their beginning. The topics are reserved first
// so that the pattern's watcher leaves them alone; those over the
// socket's limit are left to it (it says they are dropped).
func (k *wsSocket) patternSnapshots(p auth.Pattern, pos map[string]uint64, ref string) error {
	all, err := k.s.cfg.Store.Topics(k.ctx)
	if err != nil {
		return err
	}
	var snaps []string
	for _, t := range all {
		if p.Match(t) && pos[t] == 0 && k.m.reserve(t) {
			snaps = append(snaps, t)
		}
	}
	for i, t := range snaps {
		if err := k.follow(t, 0, true, string(p), ref); err != nil {
			for _, u := range snaps[i+1:] {
				k.m.unreserve(u)
			}
			return err
		}
	}
	return nil
}

// publish appends a publish frame's items and answers with an ack (the
// receipts) or an error frame.
func (k *wsSocket) publish(f wire.ClientFrame) error {
	s := k.s
	switch {
	case !k.mayPublish:
		return k.fail(f, wire.Errorf(baton.CodeForbidden, "origin %s may not publish (see --cors-origins)", clip(k.origin, 128)))
	case s.cfg.Auth != nil && !k.grant.Expires.IsZero() && !time.Now().Before(k.grant.Expires):
		return k.fail(f, wire.Errorf(baton.CodeUnauthorized, "token expired"))
	}
	if err := baton.ValidTopic(f.Topic); err != nil {
		return k.fail(f, err)
	}
	if s.cfg.Auth != nil && !k.grant.Can(auth.Publish, f.Topic) {
		return k.fail(f, wire.Errorf(baton.CodeForbidden, "the token may not publish to topic %q", f.Topic))
	}
	if len(f.Items) == 0 {
		return k.fail(f, baton.Invalidf("items", "required: an update or a list of them"))
	}
	ups, _, err := decodeUpdates(f.Items, s.cfg.MaxBatch)
	if err != nil {
		return k.fail(f, err)
	}
	ctx, cancel := context.WithTimeout(k.ctx, s.cfg.ReadTimeout)
	defer cancel()
	if s.cfg.AdmitTopic != nil {
		if err := s.cfg.AdmitTopic(ctx, f.Topic); err != nil {
			return k.fail(f, err)
		}
	}
	receipts, err := s.cfg.Append(ctx, f.Topic, ups)
	if err != nil {
		return k.fail(f, err)
	}
	body, err := json.Marshal(wire.Ack{Type: wire.FrameAck, Ref: f.Ref, Topic: f.Topic, Items: receipts})
	if err != nil {
		return err
	}
	return k.write(body)
}

// fail answers f with an error frame if err is not nil.
func (k *wsSocket) fail(f wire.ClientFrame, err error) error {
	if err == nil {
		return nil
	}
	e := *toError(err)
	e.RequestID = k.reqID
	if StatusOf(e.Code) >= 500 {
		k.s.log.Error("http: websocket frame failed", "request_id", k.reqID, "type", clip(f.Type, 32), "err", err)
	}
	body, merr := json.Marshal(wire.FrameErr{Type: wire.FrameError, Ref: f.Ref, Topic: clip(f.Topic, 160), Error: &e})
	if merr != nil {
		return merr
	}
	return k.write(body)
}

func (k *wsSocket) write(body []byte) error {
	return k.conn.writeFrame(ws.OpText, append(body, '\n'))
}

// patternCount is the number of active patterns.
func (m *multiSource) patternCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.patterns)
}

// headerHas reports whether the comma-separated header h[key] has token.
func headerHas(h nethttp.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
