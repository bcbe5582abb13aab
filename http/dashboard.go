package http

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	nethttp "net/http"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// The live dashboard: static files under /ui/ (embedded, no build step),
// fed by GET /v1/status/events, a stream of the node's status and recent
// hand-overs once a second.

//go:embed ui
var uiFiles embed.FS

// uiHandler serves the dashboard's files.
func uiHandler() nethttp.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	return nethttp.StripPrefix("/ui/", nethttp.FileServerFS(sub))
}

func (s *Server) ui(w nethttp.ResponseWriter, r *nethttp.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.uiFiles.ServeHTTP(w, r)
}

// dashboardTopics bounds the topics whose hand-overs each status event
// carries.
const dashboardTopics = 50

// statusEvent is the data of one "status" event of /v1/status/events.
type statusEvent struct {
	Status    wire.Status                `json:"status"`
	Handovers map[string][]wire.Handover `json:"handovers"`
}

// statusEvents streams the node's status and its topics' last hand-overs
// every second, for the dashboard, until the client goes away or the
// server closes. The status carries one page of topics (the first
// wire.DefaultTopicsLimit, or those after ?after=NAME), so that an event
// costs the same store reads at 10 topics as at 10,000.
func (s *Server) statusEvents(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.cfg.Status == nil {
		s.writeError(w, r, wire.Errorf(baton.CodeNotFound, "status not available on this server"))
		return
	}
	after, err := queryAfter(r)
	if err == nil && after != "" && s.cfg.TopicStatuses == nil {
		err = wire.Errorf(baton.CodeNotFound, "topic statuses not available on this server")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rc := nethttp.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(nethttp.StatusOK)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ev := statusEvent{Handovers: make(map[string][]wire.Handover)}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		st, err := s.statusPage(ctx, r, after)
		if err == nil {
			ev.Status = st
			for i, topic := range st.Topics {
				if i == dashboardTopics {
					break
				}
				if recs, err := s.cfg.Store.Handovers(ctx, topic.Topic, 10); err == nil {
					ev.Handovers[topic.Topic] = handovers(recs)
				}
			}
		} else {
			ev.Status.Problems = []baton.Problem{{Kind: baton.ProblemStore, Message: "store unavailable"}}
		}
		cancel()
		b, _ := json.Marshal(ev)
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(append(append([]byte("event: status\ndata: "), b...), "\n\n"...)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

// statusPage is the node's status with the page of topics after after.
func (s *Server) statusPage(ctx context.Context, r *nethttp.Request, after string) (wire.Status, error) {
	if after == "" {
		return s.nodeStatus(ctx, wire.DefaultTopicsLimit)
	}
	st, err := s.nodeStatus(ctx, 0)
	if err != nil {
		return st, err
	}
	page, err := s.topicPage(ctx, r, after, wire.DefaultTopicsLimit, true)
	st.Topics, st.TopicsNext = page.Statuses, page.Next
	return st, err
}
