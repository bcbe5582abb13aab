package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	nethttp "net/http"
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// Limits of GET /v1/topics/{topic}/snapshot.
const (
	DefaultSnapshotLimit = 1000
	MaxSnapshotLimit     = 10000
)

// snapshotPage is how many rows a snapshot sent on an event stream reads
// at once (tests make it small, to page).
var snapshotPage = hub.DefaultSnapshotPage

// getSnapshot serves GET /v1/topics/{topic}/snapshot: one page of the
// topic's latest item per data id (baton.Snapshots), as of the seq it
// names.
func (s *Server) getSnapshot(w nethttp.ResponseWriter, r *nethttp.Request) {
	topic, ok := s.topic(w, r)
	if !ok {
		return
	}
	afterID := r.URL.Query().Get("after_id")
	if len(afterID) > baton.MaxIDLen {
		s.writeError(w, r, baton.Invalidf("after_id", "longer than %d bytes", baton.MaxIDLen))
		return
	}
	limit, err := queryLimit(r, DefaultSnapshotLimit, MaxSnapshotLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	seq, ps, next, err := s.cfg.Store.Snapshot(r.Context(), topic, afterID, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ps == nil {
		ps = []baton.Published{}
	}
	writeJSON(w, nethttp.StatusOK, wire.SnapshotResponse{Seq: seq, Items: ps, NextAfterID: next})
}

// wantSnapshot reads ?snapshot of an event stream: 1 or true asks for the
// snapshot first, 0, false or none does not. A reconnecting client
// (Last-Event-ID) resumes instead: its snapshot ended with snapshot_end,
// whose id it sends. ?after and ?snapshot=1 exclude each other.
func wantSnapshot(r *nethttp.Request) (bool, error) {
	on, err := queryBool(r, "snapshot")
	if err != nil {
		return false, err
	}
	if on && r.URL.Query().Has("after") {
		return false, baton.Invalidf("snapshot", "snapshot=1 starts the stream after the snapshot: leave out after")
	}
	return on && r.Header.Get("Last-Event-ID") == "", nil
}

// WriteSnapshotEvents writes topic's snapshot as Server-Sent Events, one
// "snapshot" event per item (no event id) then "snapshot_end" (id and data
// seq N), a page at a time through write, and returns N: the state sent is
// the topic's as of N (hub.ReadSnapshot), and a stream continuing with the
// items after N has no gap and no duplicate. write must be done with the
// frames when it returns (their buffer is reused). Streams of many topics
// and WebSockets send theirs with the same read (writeSnapshotItems).
func (s *Server) WriteSnapshotEvents(ctx context.Context, topic string, write func(frames [][]byte) error) (uint64, error) {
	seq, err := s.writeSnapshotItems(ctx, topic, nil, nil, write)
	if err != nil {
		return 0, err
	}
	return seq, write([][]byte{snapshotEndFrame(seq)})
}

// writeSnapshotItems writes the "snapshot" events of WriteSnapshotEvents,
// not its "snapshot_end", and returns the seq the snapshot is as of. With
// prefix set, each event is prefix, the item's fields after its opening
// brace, then end: the frames of a stream of many topics (snapshotFrame).
func (s *Server) writeSnapshotItems(ctx context.Context, topic string, prefix, end []byte, write func(frames [][]byte) error) (uint64, error) {
	var buf, one []byte
	dataStart := []byte("\ndata: {")
	return hub.ReadSnapshot(ctx, s.cfg.Store, topic, snapshotPage, func(ps []baton.Published) error {
		// One buffer per page, handed to write as one frame: write
		// consumes it before the next page reuses it.
		buf = buf[:0]
		for _, p := range ps {
			var err error
			if prefix == nil {
				if buf, err = hub.AppendEventSSE(buf, wire.EventSnapshot, p); err != nil {
					return err
				}
				continue
			}
			if one, err = hub.AppendEventSSE(one[:0], wire.EventSnapshot, p); err != nil {
				return err
			}
			fields := bytes.TrimSuffix(one[bytes.Index(one, dataStart)+len(dataStart):], sseItemEnd)
			buf = append(append(append(buf, prefix...), fields...), end...)
		}
		return write([][]byte{buf})
	})
}

// snapshotEndFrame is the "snapshot_end" event of a snapshot as of seq: its
// id is seq, so that a client reconnecting with Last-Event-ID resumes the
// live stream after it.
func snapshotEndFrame(seq uint64) []byte {
	n := strconv.FormatUint(seq, 10)
	return []byte("id: " + n + "\nevent: " + wire.EventSnapshotEnd + "\ndata: {\"seq\":" + n + "}\n\n")
}

// startSnapshot writes st's head and the topic's snapshot through out, then
// subscribes st's terminal after the snapshot's seq: the stream then goes
// on as any other. It runs before the stream is served, on the handler's
// goroutine; the server's close cuts it short.
func (s *Server) startSnapshot(ctx context.Context, st *eventStream, out streamWriter, topic string) error {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.streams.ctx, stop)()
	seq, err := s.WriteSnapshotEvents(rctx, topic, headFirst(s, st, out))
	if err != nil {
		return err
	}
	// The terminal lives on the stream's context, not the snapshot's.
	term, err := s.cfg.Hub.Subscribe(ctx, topic, seq)
	if err != nil {
		return err
	}
	st.src = oneTopic{term}
	return nil
}

// headFirst returns a write function for the events sent before st is
// served: its first write sends st's head first.
func headFirst(s *Server, st *eventStream, out streamWriter) func(frames [][]byte) error {
	return func(frames [][]byte) error {
		bufs := net.Buffers(append([][]byte{st.head}, frames...))
		if st.head == nil {
			bufs = bufs[1:]
		}
		st.head = nil
		return out.write(&bufs, time.Now().Add(s.streams.writeTimeout))
	}
}

// startSnapshots is startSnapshot for topics of m, a stream of many
// topics, reserved in m (multiSource.reserve), one after the other: each
// topic's "snapshot" events (their data name the topic), then its
// "snapshot_end" (data: topic and seq N; id: the stream's, with the
// topic at N), then its terminal after N.
func (s *Server) startSnapshots(ctx context.Context, st *eventStream, m *multiSource, out streamWriter, topics []snapTopic) error {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.streams.ctx, stop)()
	write := headFirst(s, st, out)
	for _, tp := range topics {
		t := tp.topic
		prefix, end := m.snapshotFrame(t)
		seq, err := s.writeSnapshotItems(rctx, t, prefix, end, write)
		if err != nil {
			return err
		}
		m.id.Set(t, seq)
		b := m.idLine()
		b = append(b, "event: "+wire.EventSnapshotEnd+"\ndata: {\"topic\":\""...)
		b = append(b, t...)
		b = append(b, `","seq":`...)
		b = strconv.AppendUint(b, seq, 10)
		if err := write([][]byte{append(b, "}\n\n"...)}); err != nil {
			return err
		}
		if err := m.subscribe(t, seq, tp.from == "", tp.from, true); err != nil {
			return err
		}
	}
	return nil
}

// snapshotFrame is what goes before and after a "snapshot" event's item
// fields on m: the event and its topic, as an item's (itemPrefix).
func (m *multiSource) snapshotFrame(topic string) (prefix, end []byte) {
	if m.ws {
		return []byte(`{"type":"` + wire.EventSnapshot + `","topic":"` + topic + `",`), wsItemEnd
	}
	return []byte("event: " + wire.EventSnapshot + "\ndata: {\"topic\":\"" + topic + "\","), sseItemEnd
}

// wsSnapshot writes topic's snapshot on the socket k, for a subscribe
// frame with its ref: "snapshot" frames (messages of about turnBytes, as
// the stream's own), then
// "snapshot_end" (topic, seq N, ref); it returns N, after which the
// topic's terminal starts. It runs on the socket's reader: the client's
// next frames wait for it.
func (k *wsSocket) wsSnapshot(topic, ref string) (uint64, error) {
	prefix, end := k.m.snapshotFrame(topic)
	write := func(frames [][]byte) error {
		msg := bytes.Join(frames, nil)
		for len(msg) > 0 {
			// Whole frames (each ends with its only "\n"), cut after the
			// last that ends within turnBytes, or after the first.
			n := len(msg)
			if n > turnBytes {
				if n = bytes.LastIndexByte(msg[:turnBytes], '\n') + 1; n == 0 {
					if n = bytes.IndexByte(msg, '\n') + 1; n == 0 {
						n = len(msg)
					}
				}
			}
			if err := k.conn.writeFrame(ws.OpText, msg[:n]); err != nil {
				return err
			}
			msg = msg[n:]
		}
		return nil
	}
	seq, err := k.s.writeSnapshotItems(k.ctx, topic, prefix, end, write)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(struct {
		Type string `json:"type"`
		Ref  string `json:"ref,omitempty"`
		wire.SnapshotEnd
	}{wire.EventSnapshotEnd, ref, wire.SnapshotEnd{Topic: topic, Seq: seq}})
	if err != nil {
		return 0, err
	}
	return seq, k.write(body)
}

// abandon ends a stream whose first events (a snapshot) failed, before it
// was served, and gives back its admission a: the client reconnects and
// starts a new snapshot. attrs go to the log line of its end.
func (s *Server) abandon(st *eventStream, a *admission, out streamWriter, err error, attrs ...any) {
	out.close()
	if st.src != nil {
		st.src.end() // a stream of many topics: the terminals subscribed
	}
	a.release(s)
	logStreamEnd(s.log, st.reqID, st.remote, err, attrs...)
}
