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
	"github.com/baton-pub/baton/wire"
)

// statusServer answers GET /v1/status with st without its topics, and GET
// /v1/topics?status=true with st's topics after ?after (the first page
// with st's TopicsNext), their cursors moved on by step at every answer.
func statusServer(t *testing.T, st wire.Status, step uint64) *httptest.Server {
	var n atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" {
			s := st
			s.Topics, s.TopicsNext = nil, ""
			_ = json.NewEncoder(w).Encode(s)
			return
		}
		k := n.Add(1)
		after := r.URL.Query().Get("after")
		var page wire.TopicsResponse
		for _, t := range st.Topics {
			if t.Topic > after {
				t.Cursor.Seq += k * step
				page.Topics, page.Statuses = append(page.Topics, t.Topic), append(page.Statuses, t)
			}
		}
		if after == "" {
			page.Next = st.TopicsNext
		}
		_ = json.NewEncoder(w).Encode(page)
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
// nodes, a stalled and a halted topic marked, and the problems listed.
func TestStatusSummary(t *testing.T) {
	topics := func(terms int) []baton.TopicStatus {
		return []baton.TopicStatus{
			{Topic: "quotes", Held: true, Holder: "n1", Epoch: 7, ExpiresAt: time.Now().Add(time.Hour), LastSeq: 120, Cursor: baton.Cursor{Seq: 100}, QueueDepth: 20, Terminals: terms, Stalled: true},
			{Topic: "news", LastSeq: 5, Cursor: baton.Cursor{Seq: 5}, Terminals: terms,
				Ledger: &baton.LedgerStatus{Size: 9, Halted: &baton.LedgerHalt{Check: baton.HaltCursorBehind, Agreed: 5}}},
		}
	}
	counts := wire.TopicCounts{Topics: 5000, Publishing: 1, Held: 4990, Unheld: 10}
	a := statusServer(t, wire.Status{NodeStatus: baton.NodeStatus{Node: "n1", Addr: "a:1", Access: "tokens", Topics: topics(3), Watching: []string{"n2", "n3"},
		Problems: []baton.Problem{{Kind: baton.ProblemStalled, Topic: "quotes", Message: "cursor still"}}},
		Counts: counts, TopicsNext: "quotes"}, 0)
	b := statusServer(t, wire.Status{NodeStatus: baton.NodeStatus{Node: "n2", Addr: "b:1", Access: "tokens", Topics: topics(4)},
		Counts: counts, TopicsNext: "quotes"}, 0)
	out := run(t, "status", "--node", a.URL+","+b.URL+",127.0.0.1:1")
	for _, want := range []string{
		"NODE", "n1", "n2", "127.0.0.1:1", "does not answer", "a:1   tokens  1           5000", "WATCHING", "n2,n3",
		"5000 topics, 4990 with a publisher, 10 without", "the next ones: --after quotes",
		"quotes  n1", "20 STALLED", "0 HALTED (cursor_behind)", "PROBLEMS", "n1: stalled quotes: cursor still",
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
	// The next page: the topics after news, from GET /v1/topics.
	out = run(t, "status", "--node", a.URL+","+b.URL, "--after", "news", "--limit", "10")
	if !strings.Contains(out, "quotes  n1") || strings.Contains(out, "news ") {
		t.Errorf("the page after news:\n%s", out)
	}
}

// TestTopRates: top redraws and shows each topic's rate since the last
// round.
func TestTopRates(t *testing.T) {
	a := statusServer(t, wire.Status{NodeStatus: baton.NodeStatus{Node: "n1", Topics: []baton.TopicStatus{{Topic: "quotes", Cursor: baton.Cursor{Seq: 0}}}}}, 100)
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
