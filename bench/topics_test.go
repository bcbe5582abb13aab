package bench

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpreadOf(t *testing.T) {
	holders := map[string]string{"a": "n1", "b": "n1", "c": "n1", "d": "n1", "e": "n2", "f": "n2", "g": "n2", "h": "n3", "i": "dead", "j": ""}
	s := spreadOf([]string{"n1", "n2", "n3"}, holders)
	if s.Max != 4 || s.Min != 1 || s.Unheld != 2 || s.Ratio == nil || *s.Ratio != 4 {
		t.Fatalf("spread %+v", s)
	}
	if s.most() != "n1" || s.balanced(1.25) {
		t.Errorf("most %q, balanced %v", s.most(), s.balanced(1.25))
	}
	// A live node that holds nothing: no ratio, not balanced.
	s = spreadOf([]string{"n1", "n2", "n4"}, map[string]string{"a": "n1", "b": "n2"})
	if s.Ratio != nil || s.Min != 0 || s.Max != 1 || s.balanced(1.25) {
		t.Fatalf("spread with an empty node %+v", s)
	}
	// 5/4 is within 1.25; an unread topic is not balanced yet.
	h := map[string]string{}
	for i, n := range []string{"n1", "n1", "n1", "n1", "n1", "n2", "n2", "n2", "n2", "n3", "n3", "n3", "n3"} {
		h[string(rune('a'+i))] = n
	}
	s = spreadOf([]string{"n1", "n2", "n3"}, h)
	if !s.balanced(1.25) {
		t.Errorf("5/4/4 not balanced: %+v", s)
	}
	s.Unread = 1
	if s.balanced(1.25) {
		t.Error("balanced with a topic unread")
	}
	if got := spreadOf([]string{"n1"}, nil).most(); got != "" {
		t.Errorf("most of nothing held = %q", got)
	}
}

func TestCommandStats(t *testing.T) {
	before, err := commandStats("# Commandstats\r\ncmdstat_evalsha:calls=10,usec=500,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=3,usec=9\r\n")
	if err != nil {
		t.Fatal(err)
	}
	after, err := commandStats(strings.Join([]string{
		"# Commandstats",
		"cmdstat_evalsha:calls=25,usec=900,usec_per_call=36.00,rejected_calls=0,failed_calls=0",
		"cmdstat_hset:calls=30,usec=30,usec_per_call=1.00,rejected_calls=0,failed_calls=0",
		"cmdstat_fcall:calls=2,usec=30",
		"cmdstat_xrange:calls=7,usec=14",
		"cmdstat_info:calls=5,usec=15",
		"",
	}, "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if after["hset"] != 30 || after["evalsha"] != 25 {
		t.Fatalf("parsed %v", after)
	}
	// 15 evalsha + 30 hset + 2 fcall + 7 xrange; INFO is the bench's own.
	cmds, scripts := redisDelta(before, after)
	if cmds != 54 || scripts != 17 {
		t.Errorf("delta: %d commands, %d scripts; want 54, 17", cmds, scripts)
	}
	if _, err := commandStats("cmdstat_get:calls=x,usec=1"); err == nil {
		t.Error("no error on a bad count")
	}
	if got := redisCPU("# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9\r\n"); got.Seconds() != 3.75 {
		t.Errorf("redis cpu %v", got)
	}
}

func TestStoreOps(t *testing.T) {
	text := func(renew, lock, cursor string) []byte {
		return []byte(`# HELP baton_store_operation_duration_seconds Duration of store operations.
# TYPE baton_store_operation_duration_seconds histogram
baton_store_operation_duration_seconds_bucket{operation="renew",le="0.001"} 3
baton_store_operation_duration_seconds_sum{operation="renew"} 0.5
baton_store_operation_duration_seconds_count{operation="renew"} ` + renew + `
baton_store_operation_duration_seconds_count{operation="lock"} ` + lock + `
baton_store_operation_duration_seconds_count{operation="cursor"} ` + cursor + `
baton_store_operation_errors_total{operation="renew",code="conflict"} 2
`)
	}
	parse := func(b []byte) map[string]float64 {
		m, err := storeOps(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := parse(text("100", "1000", "1000"))
	if a["renew"] != 100 || a["lock"] != 1000 || len(a) != 3 {
		t.Fatalf("parsed %v", a)
	}
	// Over the window: 40 renewals, 4 lock reads of the node's own, and
	// one scrape's status read of 1,000 locks and cursors (made by the
	// scrape before the window), which the scrape after it repeats in a
	// tenth of the window's time, with 4 renewals and 1 lock read more.
	b := parse(text("140", "2004", "2000"))
	c := parse(text("144", "3005", "3000"))
	got := idleOps(a, b, c, 0.1)
	if len(got) != 2 || got["renew"] != 40 || math.Abs(got["lock"]-3/0.9) > 1e-9 {
		t.Errorf("idle ops %v; want renew 40, lock 3.33", got)
	}
	if got := idleOps(a, b, c, 0.9); got["renew"] != 36 {
		t.Errorf("idle ops with scrapes too far apart to correct %v; want renew 36", got)
	}
	if _, err := storeOps([]byte(storeOpsMetric + `{operation="x"} y`)); err == nil {
		t.Error("no error on a bad value")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestTopicsScenario runs the topics scenario with 20 topics on SQLite:
// every phase ends with figures that add up. It asserts nothing about
// speed.
func TestTopicsScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nodes")
	}
	bin := filepath.Join(t.TempDir(), "baton")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/baton").CombinedOutput(); err != nil {
		t.Fatalf("build baton: %v\n%s", err, out)
	}
	const n = 20
	r, err := Run(context.Background(), Config{Store: "sqlite", Scenarios: []string{"topics"}, Topics: []int{n}, Quick: true, Exe: bin}, tlog{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Failures) > 0 || r.Topics == nil || len(r.Topics.Rows) != 1 {
		t.Fatalf("failures %v, result %+v", r.Failures, r.Topics)
	}
	row := r.Topics.Rows[0]
	if row.Created != n || row.PublishedMs == nil || row.Published != n {
		t.Errorf("created %d, published %d after %v", row.Created, row.Published, row.PublishedMs)
	}
	if id := row.Idle; id == nil || len(id.CPU) != 3 || len(id.RSSMB) != 3 || id.StoreOps <= 0 || id.Seconds <= 0 {
		t.Errorf("idle %+v", row.Idle)
	}
	if row.Status.Count+int64(row.StatusFailed) != int64(planFor(true).topicsStatusReqs) || row.Status.Count == 0 {
		t.Errorf("status %+v, %d failed", row.Status, row.StatusFailed)
	}
	sum := func(s LeaseSpread) int {
		k := s.Unheld + s.Unread
		for _, c := range s.PerNode {
			k += c
		}
		return k
	}
	if l := row.Leases; l == nil || sum(*l) != n || len(l.PerNode) != 3 {
		t.Fatalf("leases %+v", row.Leases)
	}
	k := row.Kill
	if k == nil || k.Topics != row.Leases.Max || k.Topics != row.Leases.PerNode[k.Victim] || int(k.Stats.Count)+k.Late != k.Topics {
		t.Errorf("kill %+v, leases %+v", k, row.Leases)
	}
	if k != nil && k.Stats.Count > 0 && k.Stats.P50 <= 0 {
		t.Errorf("kill times %+v", k.Stats)
	}
	if j := row.Join; j == nil || j.Node != "n4" || len(j.Final.PerNode) != 3 || sum(j.Final) != n {
		t.Errorf("join %+v", row.Join)
	}
	var md strings.Builder
	r.Markdown(&md, nil)
	if !strings.Contains(md.String(), TopicsMarkdownHeader) || !strings.Contains(md.String(), "| 20, SQLite | ") {
		t.Errorf("markdown:\n%s", md.String())
	}
}

// tlog writes a run's progress to the test log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestWitnessBacklog: the backlog is the sum of a node's two witness
// gauges; a node without them reports none; a gauge that does not parse is
// an error, not a caught-up witness.
func TestWitnessBacklog(t *testing.T) {
	text := []byte("# HELP baton_witness_rounds_ready x\n# TYPE baton_witness_rounds_ready gauge\nbaton_witness_rounds_ready 3\n" +
		"baton_witness_rounds_scheduled 1250\nbaton_witness_rounds_scheduled_other 7\nbaton_streams_open 2\n")
	if n, ok, err := witnessBacklog(text); err != nil || !ok || n != 1253 {
		t.Fatalf("backlog %v, %v, %v; want 1253", n, ok, err)
	}
	if n, ok, err := witnessBacklog([]byte("baton_streams_open 2\n")); err != nil || ok || n != 0 {
		t.Fatalf("no gauges: %v, %v, %v; want none reported", n, ok, err)
	}
	if _, _, err := witnessBacklog([]byte("baton_witness_rounds_ready NaNx\n")); err == nil {
		t.Fatal("a gauge that does not parse was taken")
	}
}

// TestLeasesTakenWhileIdle: the topics scenario's idle window counts the
// leases the nodes acquired in it (baton_lease_acquisitions_total), and
// any is a missed target: settled leases do not move.
func TestLeasesTakenWhileIdle(t *testing.T) {
	text := []byte("# TYPE baton_lease_acquisitions_total counter\nbaton_lease_acquisitions_total 1004\nbaton_lease_acquisitions_total_other 9\n")
	if n, ok, err := metricSum(text, acquiredMetric); err != nil || !ok || n != 1004 {
		t.Fatalf("acquisitions %v, %v, %v; want 1004", n, ok, err)
	}
	for _, c := range []struct {
		taken int
		met   bool
	}{{0, true}, {8, false}} {
		r := &Report{Engine: "redis", Topics: &TopicsResult{Nodes: 3, TTLms: 2000, Rows: []TopicsRow{
			{Topics: 10000, Idle: &IdleFigures{CPUMax: 2, StoreOps: 41, LeasesTaken: c.taken}}}}}
		var got *Target
		r.topicsTargets(func(tg Target) {
			if tg.Name == "leases taken while idle (10000 topics)" {
				got = &tg
			}
		})
		if got == nil || got.Met == nil || *got.Met != c.met || got.Value != fmt.Sprint(c.taken) {
			t.Errorf("%d taken: target %+v, want met %v", c.taken, got, c.met)
		}
	}
}
