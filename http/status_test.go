package http

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/wire"
)

// statusNode is a node (not started) on store, for its status methods.
func statusNode(t *testing.T, store baton.Store) *node.Node {
	t.Helper()
	n, err := node.New(store, node.Config{Node: "n1", Addr: "a:1", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTopicsPages: GET /v1/topics answers its topics in name order, a
// page at a time (100 by default), each page's next the after of the
// following one; with ?status=true each topic's status too, read for the
// page only.
func TestTopicsPages(t *testing.T) {
	store := memstore.New(nil)
	var all []string
	for i := range 150 {
		all = append(all, fmt.Sprintf("t%03d", i))
		appendN(t, store, all[i], 1)
	}
	n := statusNode(t, store)
	e := newEnv(t, store, hub.Options{}, Config{Status: n.Status, TopicStatuses: n.TopicStatuses})

	var got wire.TopicsResponse
	e.do("GET", "/v1/topics", nil, nil, &got)
	if len(got.Topics) != wire.DefaultTopicsLimit || got.Topics[0] != "t000" || got.Next != "t099" || got.Statuses != nil {
		t.Fatalf("the default page: %d topics from %v, next %q, %d statuses", len(got.Topics), got.Topics[:1], got.Next, len(got.Statuses))
	}
	var walked []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("the pages do not end")
		}
		got = wire.TopicsResponse{}
		e.do("GET", "/v1/topics?limit=40&after="+after, nil, nil, &got)
		walked = append(walked, got.Topics...)
		if got.Next == "" {
			break
		}
		after = got.Next
	}
	if strings.Join(walked, ",") != strings.Join(all, ",") {
		t.Errorf("pages of 40 walked %d topics, want the 150 in order", len(walked))
	}
	got = wire.TopicsResponse{}
	e.do("GET", "/v1/topics?status=true&after=t147", nil, nil, &got)
	if strings.Join(got.Topics, ",") != "t148,t149" || got.Next != "" || len(got.Statuses) != 2 ||
		got.Statuses[1].Topic != "t149" || got.Statuses[1].LastSeq != 1 || got.Statuses[1].QueueDepth != 1 {
		t.Errorf("the last page with statuses: %+v", got)
	}
	got = wire.TopicsResponse{}
	e.do("GET", "/v1/topics?after=zzz", nil, nil, &got)
	if got.Topics == nil || len(got.Topics) != 0 || got.Next != "" {
		t.Errorf("after the last topic: %+v, want an empty list", got)
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1", "status=maybe", "after=%20bad"} {
		var bad wire.ErrorResponse
		if resp := e.do("GET", "/v1/topics?"+q, nil, nil, &bad); resp.StatusCode != 400 || bad.Error == nil || bad.Error.Code != baton.CodeInvalid {
			t.Errorf("?%s: %d %+v, want 400 invalid", q, resp.StatusCode, bad.Error)
		}
	}
	bare := newEnv(t, store, hub.Options{}, Config{})
	var bad wire.ErrorResponse
	if resp := bare.do("GET", "/v1/topics?status=true", nil, nil, &bad); resp.StatusCode != 503 {
		t.Errorf("statuses without a node: %d, want 503", resp.StatusCode)
	}
}

// TestStatusPage: GET /v1/status carries the node's counts and its first
// topics, ?topics=N of them (none by default).
func TestStatusPage(t *testing.T) {
	store := memstore.New(nil)
	for i := range 120 {
		appendN(t, store, fmt.Sprintf("t%03d", i), 1)
	}
	n := statusNode(t, store)
	e := newEnv(t, store, hub.Options{}, Config{Status: n.Status, TopicStatuses: n.TopicStatuses})
	for q, want := range map[string]string{"": "0 ", "?topics=3": "3 t002", "?topics=100": "100 t099", "?topics=1000": "120 "} {
		var st wire.Status
		e.do("GET", "/v1/status"+q, nil, nil, &st)
		if got := fmt.Sprintf("%d %s", len(st.Topics), st.TopicsNext); got != want || st.Topics == nil {
			t.Errorf("/v1/status%s: %q topics and next, want %q", q, got, want)
		}
		if st.Counts != (wire.TopicCounts{Topics: 120, Unheld: 120}) || st.Node != "n1" {
			t.Errorf("/v1/status%s: counts %+v", q, st.Counts)
		}
	}
	var bad wire.ErrorResponse
	if resp := e.do("GET", "/v1/status?topics=1001", nil, nil, &bad); resp.StatusCode != 400 || bad.Error.Code != baton.CodeInvalid {
		t.Errorf("?topics=1001: %d %+v", resp.StatusCode, bad.Error)
	}
}

// TestTopicsPagesFiltered: with tokens, the pages hold only the topics
// the token may read (the limit counts those), and the statuses need the
// admin right, as GET /v1/status does.
func TestTopicsPagesFiltered(t *testing.T) {
	var n atomic.Pointer[node.Node] // made on the server's store, once it is
	a := newAuthEnv(t, Config{TopicStatuses: func(ctx context.Context, topics []string) ([]baton.TopicStatus, error) {
		return n.Load().TopicStatuses(ctx, topics)
	}})
	n.Store(statusNode(t, a.store))
	for _, topic := range []string{"news", "quotes.a", "quotes.b", "quotes.c", "rates"} {
		appendN(t, a.store, topic, 1)
	}
	bearer := func(r auth.Rights) map[string]string {
		return map[string]string{"Authorization": "Bearer " + a.token(time.Hour, r)}
	}
	reader := bearer(auth.Rights{Subscribe: []string{"quotes.*"}})
	var got wire.TopicsResponse
	a.do("GET", "/v1/topics?limit=2", nil, reader, &got)
	if strings.Join(got.Topics, " ") != "quotes.a quotes.b" || got.Next != "quotes.b" {
		t.Errorf("a reader's first page: %+v", got)
	}
	got = wire.TopicsResponse{}
	a.do("GET", "/v1/topics?limit=2&after=quotes.b", nil, reader, &got)
	if strings.Join(got.Topics, " ") != "quotes.c" || got.Next != "" {
		t.Errorf("a reader's second page: %+v", got)
	}
	var bad wire.ErrorResponse
	if resp := a.do("GET", "/v1/topics?status=true", nil, reader, &bad); resp.StatusCode != 403 || bad.Error.Code != baton.CodeForbidden {
		t.Errorf("a reader asking for statuses: %d %+v, want 403", resp.StatusCode, bad.Error)
	}
	got = wire.TopicsResponse{}
	a.do("GET", "/v1/topics?status=true&limit=2&after=quotes.c", nil, bearer(auth.Rights{Admin: true}), &got)
	if strings.Join(got.Topics, " ") != "rates" || len(got.Statuses) != 1 || got.Statuses[0].Topic != "rates" {
		t.Errorf("an admin's page with statuses: %+v", got)
	}
}

// TestStatusEventsPage: the dashboard's stream carries one page of topics,
// those after ?after=NAME, with the next page's after.
func TestStatusEventsPage(t *testing.T) {
	store := memstore.New(nil)
	for i := range 205 {
		appendN(t, store, fmt.Sprintf("t%03d", i), 1)
	}
	n := statusNode(t, store)
	e := newEnv(t, store, hub.Options{}, Config{Status: n.Status, TopicStatuses: n.TopicStatuses})
	for after, want := range map[string]string{"": "100 t000 t099", "t099": "100 t100 t199", "t199": "5 t200 "} {
		resp, err := nethttp.Get(e.url + "/v1/status/events?after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		var ev statusEvent
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		resp.Body.Close()
		st := ev.Status
		if len(st.Topics) == 0 {
			t.Fatalf("after %q: no topics in the event", after)
		}
		if got := fmt.Sprintf("%d %s %s", len(st.Topics), st.Topics[0].Topic, st.TopicsNext); got != want || st.Counts.Topics != 205 {
			t.Errorf("after %q: %q (counts %+v), want %q", after, got, st.Counts, want)
		}
	}
}
