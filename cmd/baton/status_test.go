package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// statusServer answers GET /v1/status with st, its cursor moved on by
// step at every answer.
func statusServer(t *testing.T, st baton.NodeStatus, step uint64) *httptest.Server {
	var n atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := st
		s.Topics = append([]baton.TopicStatus(nil), st.Topics...)
		k := n.Add(1)
		for i := range s.Topics {
			s.Topics[i].Cursor.Seq += k * step
		}
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func run(t *testing.T, cmdArgs ...string) string {
	t.Helper()
	var cmd = newStatus()
	if cmdArgs[0] == "top" {
		cmd = newTop()
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(cmdArgs[1:])
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v: %v\n%s", cmdArgs, err, out.String())
	}
	return out.String()
}

// TestStatusSummary: every node of --node gets a line (one that does not
// answer says so), every topic one, with its terminals summed over the
// nodes, a stalled topic marked, and the problems listed.
func TestStatusSummary(t *testing.T) {
	topics := func(terms int) []baton.TopicStatus {
		return []baton.TopicStatus{
			{Topic: "quotes", Held: true, Holder: "n1", Epoch: 7, ExpiresAt: time.Now().Add(time.Hour), LastSeq: 120, Cursor: baton.Cursor{Seq: 100}, QueueDepth: 20, Terminals: terms, Stalled: true},
			{Topic: "news", LastSeq: 5, Cursor: baton.Cursor{Seq: 5}, Terminals: terms},
		}
	}
	a := statusServer(t, baton.NodeStatus{Node: "n1", Addr: "a:1", Access: "tokens", Topics: topics(3),
		Problems: []baton.Problem{{Kind: baton.ProblemStalled, Topic: "quotes", Message: "cursor still"}}}, 0)
	b := statusServer(t, baton.NodeStatus{Node: "n2", Addr: "b:1", Access: "tokens", Topics: topics(4)}, 0)
	out := run(t, "status", "--node", a.URL+","+b.URL+",127.0.0.1:1")
	for _, want := range []string{
		"NODE", "n1", "n2", "127.0.0.1:1", "does not answer",
		"quotes  n1", "20 STALLED", "PROBLEMS", "n1: stalled quotes: cursor still",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	var quotes string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "quotes") {
			quotes = l
		}
	}
	if f := strings.Fields(quotes); len(f) < 8 || f[len(f)-1] != "7" {
		t.Errorf("quotes line %q: want 7 terminals (3 + 4) last", quotes)
	}
}

// TestTopRates: top redraws and shows each topic's rate since the last
// round.
func TestTopRates(t *testing.T) {
	a := statusServer(t, baton.NodeStatus{Node: "n1", Topics: []baton.TopicStatus{{Topic: "quotes", Cursor: baton.Cursor{Seq: 0}}}}, 100)
	out := run(t, "top", "--node", a.URL, "--interval", "50ms", "--rounds", "2")
	if n := strings.Count(out, "\x1b[H\x1b[2J"); n != 2 {
		t.Errorf("%d redraws, want 2", n)
	}
	rounds := strings.Split(out, "\x1b[H\x1b[2J")
	last := rounds[len(rounds)-1]
	if !strings.Contains(last, "ITEMS/S") {
		t.Fatalf("no rate column:\n%s", last)
	}
	for _, l := range strings.Split(last, "\n") {
		if strings.HasPrefix(l, "quotes") {
			f := strings.Fields(l)
			if rate := f[len(f)-1]; rate == "-" || rate == "0" {
				t.Errorf("rate %q after the cursor moved by 100", rate)
			}
		}
	}
}
