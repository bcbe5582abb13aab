package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// socket reads one WebSocket connection (docs/api.md, "WebSocket"): it
// subscribes to every topic from its position and to every pattern with
// the positions of the topics it selects, then delivers what comes.
func (s *Subscriber) socket(ctx context.Context, base string, fn func(Event) error) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The socket is abandoned when nothing arrives, pings included, for
	// StreamIdle.
	idle := time.AfterFunc(s.c.o.StreamIdle, cancel)
	defer idle.Stop()
	hdr := http.Header{}
	tok, err := s.c.bearer(ctx)
	if err != nil {
		return false, stopError{err}
	}
	if tok != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/ws"
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: s.c.o.HTTP,
		HTTPHeader: hdr,
		OnPingReceived: func(context.Context, []byte) bool {
			idle.Reset(s.c.o.StreamIdle)
			return true
		},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return false, s.c.refusal("websocket", resp.StatusCode, b)
		}
		return false, err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(wire.MaxEventLine)
	if err := conn.Write(ctx, websocket.MessageText, s.subscribeFrames()); err != nil {
		return false, err
	}
	progressed := false
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return progressed, err
		}
		idle.Reset(s.c.o.StreamIdle)
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var f wire.ServerFrame
			if err := json.Unmarshal(line, &f); err != nil {
				return progressed, stopError{fmt.Errorf("subscribe: bad frame from %s: %w", base, err)}
			}
			switch f.Type {
			case wire.EventAuth:
				return progressed, s.c.authEnd("websocket", &wire.Error{Status: http.StatusUnauthorized, Code: f.Code, Message: f.Message})
			case wire.FrameError:
				if f.Ref == "" {
					// A notice, not an answer: a topic a pattern found
					// over the socket's limit is not followed.
					continue
				}
				return progressed, frameError(f)
			}
			p, err := s.deliver(base, f, fn)
			progressed = progressed || p
			if err != nil {
				return progressed, err
			}
		}
	}
}

// subscribeFrames are the subscribe frames of every topic and pattern,
// one message.
func (s *Subscriber) subscribeFrames() []byte {
	pos := s.Positions()
	var b []byte
	for _, t := range s.named {
		f, _ := json.Marshal(wire.ClientFrame{Type: wire.FrameSubscribe, Ref: "s", Topic: t, After: pos[t], Snapshot: s.snap && pos[t] == 0})
		b = append(append(b, f...), '\n')
	}
	for _, p := range s.patterns {
		sel := make(map[string]uint64)
		for t, seq := range pos {
			if p.Match(t) {
				sel[t] = seq
			}
		}
		f, _ := json.Marshal(wire.ClientFrame{Type: wire.FrameSubscribe, Ref: "s", Topic: string(p), Positions: sel, Snapshot: s.snap})
		b = append(append(b, f...), '\n')
	}
	return b
}

// frameError is an error frame as resume wants it: a refusal of ours (a
// 4xx) stops, anything else is retried.
func frameError(f wire.ServerFrame) error {
	e := f.Error
	if e == nil {
		e = &wire.Error{Code: baton.CodeInternal, Message: "error frame without an error"}
	}
	err := fmt.Errorf("subscribe %s: %w", f.Topic, e)
	switch e.Code {
	case baton.CodeUnavailable, baton.CodeInternal, baton.CodeTooMany, baton.CodeRateLimited:
		return err
	}
	return stopError{err}
}
