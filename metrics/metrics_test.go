package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/metrics"
	"github.com/baton-pub/baton/wire"
)

func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// TestStoreEvents: the data path's events are counted from the store's
// answers: appends without duplicates, commits and their batch, leases
// acquired, renewals that failed, releases by reason, and the hand-over
// of a released lease to its successor.
func TestStoreEvents(t *testing.T) {
	m := metrics.New(metrics.Config{})
	st := m.Store(memstore.New(nil))
	ctx := context.Background()
	up := []baton.Update{{ID: "a", Value: []byte("1"), MsgID: "m1"}, {ID: "b", Value: []byte("2"), MsgID: "m2"}}
	if _, err := st.Append(ctx, "quotes", up); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, "quotes", up[:1]); err != nil { // a retry: a duplicate
		t.Fatal(err)
	}
	n1, err := st.AcquireNode(ctx, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := st.Acquire(ctx, "quotes", n1)
	if err != nil {
		t.Fatal(err)
	}
	items, err := st.Items(ctx, "quotes", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, baton.Commit{Topic: "quotes", Epoch: lease.Epoch, Holder: "n1", Items: items, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	stale := n1
	stale.Epoch++
	if _, err := st.RenewNode(ctx, stale, time.Minute); err == nil {
		t.Fatal("a stale renewal succeeded")
	}
	if err := st.Release(ctx, lease, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	n2, err := st.AcquireNode(ctx, "n2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Acquire(ctx, "quotes", n2); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"baton_items_appended_total":       2,
		"baton_items_published_total":      2,
		"baton_publish_batch_items":        1,
		"baton_lease_acquisitions_total":   2,
		"baton_lease_renew_failures_total": 1,
		"baton_lease_releases_total":       1,
	} {
		if got := value(t, m, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, m, "baton_store_operation_errors_total", map[string]string{"operation": "renew_node", "code": baton.CodeConflict}); got != 1 {
		t.Errorf("renew conflicts = %v, want 1", got)
	}
	// The node reads the hand-over's record and tells the metrics
	// (node.Config.OnHandover; node/handovers.go).
	recs, err := st.Handovers(ctx, "quotes", 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("handovers: %v %v", recs, err)
	}
	m.Handover(recs[0])
	if value(t, m, "baton_handovers_total", map[string]string{"reason": "released"}) != 1 ||
		value(t, m, "baton_handover_duration_seconds", nil) != 1 {
		t.Error("the hand-over not counted")
	}
}

// TestTopicLabelsBounded: past MaxTopicLabels topics, the rest share one
// label, so the series stay bounded however many topics there are.
func TestTopicLabelsBounded(t *testing.T) {
	m := metrics.New(metrics.Config{MaxTopicLabels: 2})
	st := m.Store(memstore.New(nil))
	for i, topic := range []string{"a", "b", "c", "d", "a"} {
		if _, err := st.Append(context.Background(), topic, []baton.Update{{ID: "x", Value: []byte("1"), MsgID: string(rune('0' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	for topic, want := range map[string]float64{"a": 2, "b": 1, metrics.OtherTopics: 2, "c": -1} {
		if got := value(t, m, "baton_items_appended_total", map[string]string{"topic": topic}); got != want {
			t.Errorf("appended{topic=%q} = %v, want %v", topic, got, want)
		}
	}
}

// TestTopicGauges: each scrape reads the node's status: its counts and
// problems, and its topics' gauges.
func TestTopicGauges(t *testing.T) {
	status := wire.Status{
		NodeStatus: baton.NodeStatus{Topics: []baton.TopicStatus{
			{Topic: "quotes", Role: baton.RoleActive, Held: true, QueueDepth: 7, Terminals: 3, Ledger: &baton.LedgerStatus{Size: 10, Alarms: 1}},
			{Topic: "news", Role: baton.RoleStandby, Held: false},
		}, Problems: []baton.Problem{{Kind: baton.ProblemLedger, Topic: "quotes"}}},
		Counts: wire.TopicCounts{Topics: 9000, Held: 8000, Unheld: 1000},
	}
	var down bool
	m := metrics.New(metrics.Config{Status: func(context.Context, int) (wire.Status, error) {
		if down {
			return wire.Status{}, errors.New("store down")
		}
		return status, nil
	}})
	for name, want := range map[string]float64{
		"baton_topic_lag_items":       7,
		"baton_topic_publishing":      1,
		"baton_terminals":             3,
		"baton_ledger_leaves":         10,
		"baton_ledger_witness_alarms": 1,
	} {
		if got := value(t, m, name, map[string]string{"topic": "quotes"}); got != want {
			t.Errorf("%s{quotes} = %v, want %v", name, got, want)
		}
	}
	if got := value(t, m, "baton_topic_held", map[string]string{"topic": "news"}); got != 0 {
		t.Errorf("held{news} = %v, want 0 (no publisher)", got)
	}
	for name, want := range map[string]float64{"baton_topics": 9000, "baton_topics_unheld": 1000, "baton_status_up": 1} {
		if got := value(t, m, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for kind, want := range map[string]float64{baton.ProblemLedger: 1, baton.ProblemStalled: 0} {
		if got := value(t, m, "baton_node_problems", map[string]string{"kind": kind}); got != want {
			t.Errorf("problems{%s} = %v, want %v", kind, got, want)
		}
	}
	down = true
	if got := value(t, m, "baton_status_up", nil); got != 0 {
		t.Errorf("status_up with the store down = %v", got)
	}
	// The text format, as Prometheus scrapes it.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"# HELP baton_status_up", "go_goroutines", "process_open_fds", "baton_status_up 0"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the scrape lacks %q", want)
		}
	}
}

// TestTopicGaugesBounded: a scrape reads at most MaxTopicLabels topics,
// the ones this node publishes first; those past the bound count under
// OtherTopics, and no topic is read twice.
func TestTopicGaugesBounded(t *testing.T) {
	var mine []string
	for i := range 5 {
		mine = append(mine, fmt.Sprintf("m%d", i))
	}
	var asked int
	var read []string
	m := metrics.New(metrics.Config{
		MaxTopicLabels: 3,
		Publishing:     func() []string { return slices.Clone(mine) },
		Status: func(_ context.Context, topics int) (wire.Status, error) {
			asked = topics
			var st wire.Status
			for _, t := range []string{"a", "b", "m0"}[:min(topics, 3)] {
				st.Topics = append(st.Topics, baton.TopicStatus{Topic: t, Held: true})
			}
			read = append(read, []string{"a", "b", "m0"}[:min(topics, 3)]...)
			return st, nil
		},
		TopicStatuses: func(_ context.Context, topics []string) ([]baton.TopicStatus, error) {
			var out []baton.TopicStatus
			for _, t := range topics {
				out = append(out, baton.TopicStatus{Topic: t, Role: baton.RoleActive, Held: true})
			}
			read = append(read, topics...)
			return out, nil
		},
	})
	if got := value(t, m, "baton_topic_publishing", map[string]string{"topic": metrics.OtherTopics}); got != 2 {
		t.Errorf("publishing{_other} = %v, want 2 (5 topics published, 3 labels)", got)
	}
	if asked != 0 || strings.Join(read, ",") != "m0,m1,m2" {
		t.Errorf("5 topics published, 3 labels: asked the status of %d first topics and read %v, want 0 and m0,m1,m2", asked, read)
	}
	mine, read = mine[:1], nil
	if got := value(t, m, "baton_topic_publishing", map[string]string{"topic": "m0"}); got != 1 {
		t.Errorf("publishing{m0} = %v, want 1", got)
	}
	if asked != 2 || strings.Join(read, ",") != "a,b,m0" {
		t.Errorf("1 topic published, 3 labels: asked for %d first topics and read %v, want 2 and a,b,m0", asked, read)
	}
}

// TestFailClosedCounted: each topic lease given up fail-closed counts
// once (node.Config.OnFailClosed).
func TestFailClosedCounted(t *testing.T) {
	m := metrics.New(metrics.Config{})
	m.FailClosed("a")
	m.FailClosed("b")
	if got := value(t, m, "baton_lease_fail_closed_total", nil); got != 2 {
		t.Errorf("baton_lease_fail_closed_total = %v, want 2", got)
	}
}

func TestStreamGauges(t *testing.T) {
	m := metrics.New(metrics.Config{})
	open, gap := 3, 1500*time.Microsecond
	m.Streams(func() int { return open }, func() time.Duration { return gap })
	if v := value(t, m, "baton_streams_open", nil); v != 3 {
		t.Fatalf("baton_streams_open = %v, want 3", v)
	}
	if v := value(t, m, "baton_stream_coalesce_gap_seconds", nil); v != 0.0015 {
		t.Fatalf("baton_stream_coalesce_gap_seconds = %v, want 0.0015", v)
	}
	open, gap = 0, 0 // read at each scrape
	if v := value(t, m, "baton_streams_open", nil); v != 0 {
		t.Fatalf("baton_streams_open after the streams ended = %v", v)
	}
}

func TestWitnessGauges(t *testing.T) {
	m := metrics.New(metrics.Config{})
	w := &fakeWitness{now: 4, later: 250, rounds: 7}
	m.Witness(w)
	if v := value(t, m, "baton_witness_rounds_total", nil); v != 7 {
		t.Fatalf("baton_witness_rounds_total = %v, want 7", v)
	}
	if v := value(t, m, "baton_witness_rounds_ready", nil); v != 4 {
		t.Fatalf("baton_witness_rounds_ready = %v, want 4", v)
	}
	if v := value(t, m, "baton_witness_rounds_scheduled", nil); v != 250 {
		t.Fatalf("baton_witness_rounds_scheduled = %v, want 250", v)
	}
	w.now, w.later, w.rounds = 0, 0, 9 // read at each scrape
	if v := value(t, m, "baton_witness_rounds_ready", nil) + value(t, m, "baton_witness_rounds_scheduled", nil); v != 0 {
		t.Fatalf("the witness's gauges after it settled = %v, want 0", v)
	}
	if v := value(t, m, "baton_witness_rounds_total", nil); v != 9 {
		t.Fatalf("baton_witness_rounds_total = %v, want 9", v)
	}
}

type fakeWitness struct {
	now, later int
	rounds     uint64
}

func (w *fakeWitness) Backlog() (int, int) { return w.now, w.later }
func (w *fakeWitness) Rounds() uint64      { return w.rounds }
