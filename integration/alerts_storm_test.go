package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/poll"
)

// TestHandoverStormFiresForReal causes a hand-over storm with real nodes
// and a real Prometheus evaluating deploy/prometheus/alerts.yml: two nodes
// share forty topics; `baton drain` empties one (its topics go to the
// other), `baton drain --undo` lets it race again, and draining the other
// moves all forty back: past the rule's 30 hand-overs in 10 minutes, each
// counted by the successor (baton_handovers_total). The alert is not
// firing before, with every topic's first lease taken and the topics
// balanced over the two nodes.
func TestHandoverStormFiresForReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and real nodes")
	}
	c := newCluster(t, sqliteEngine, 2, testTTL)
	p := startPrometheus(t, []string{metricsTarget(c.nodes[0]), metricsTarget(c.nodes[1])})
	topics := make([]string, 40)
	for i := range topics {
		topics[i] = fmt.Sprintf("storm%02d", i)
		publishOne(t, c, topics[i])
	}
	// n1 takes them first; the nodes then balance them (hand-overs too,
	// fewer than the rule's 30).
	poll.Until(t, 60*time.Second, "the topics balanced", func() error {
		by, err := c.leasesByNode(topics)
		if err == nil {
			err = balancedOver(by, "n1", "n2")
		}
		return err
	})
	// Prometheus must have seen both nodes' counters as they stand before
	// the storm, or it sees no increase. They may still move: a hand-over
	// is counted once its record is read.
	poll.Until(t, 60*time.Second, "prometheus to scrape the hand-overs so far", func() error {
		var now float64
		for _, n := range c.nodes {
			for _, reason := range []string{"released", "expired", "crashed", "failed"} {
				now += scrape(t, n.URL()+"/metrics", `baton_handovers_total{reason="`+reason+`"}`)
			}
		}
		if n, _ := p.value(`count(baton_handovers_total)`); n != 8 {
			return fmt.Errorf("prometheus has %v hand-over series, want 4 reasons on 2 nodes", n)
		}
		if got, ok := p.value(`sum(baton_handovers_total)`); !ok || got != now {
			return fmt.Errorf("prometheus has %v (%v), the nodes %v", got, ok, now)
		}
		return nil
	})
	if got := p.firing("BatonHandoverStorm"); len(got) != 0 {
		t.Fatalf("BatonHandoverStorm firing before any hand-over: %v", got)
	}
	drain := func(n string, args ...string) {
		t.Helper()
		out, err := exec.Command(batonBin, append([]string{"drain", "--node", c.node(n).Addr, "--timeout", "30s"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("baton drain %s %v: %v\n%s", n, args, err, out)
		}
	}
	allOn := func(n string) {
		t.Helper()
		poll.Until(t, 60*time.Second, "every topic on "+n, func() error {
			by, err := c.leasesByNode(topics)
			if err == nil && by[n] != len(topics) {
				err = fmt.Errorf("leases by node %v", by)
			}
			return err
		})
	}
	drain("n1")
	allOn("n2")
	drain("n1", "--undo")
	drain("n2")
	allOn("n1")
	p.waitFiring("BatonHandoverStorm", nil)

	// Each hand-over is logged once, by its successor, with the epochs of
	// its record in the store (docs/operations.md, "Logs").
	want := make(map[string]bool)
	for _, topic := range topics {
		for _, h := range c.handovers(topic) {
			if h.SuccessorEpoch != 0 {
				want[fmt.Sprintf("%s %d->%d by %s", topic, h.Epoch, h.SuccessorEpoch, h.Successor)] = true
			}
		}
	}
	poll.Until(t, 30*time.Second, "every hand-over logged once", func() error {
		got := make(map[string]int)
		for _, n := range c.nodes {
			b, err := os.ReadFile(n.Log())
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				var rec struct {
					Msg, Topic, Node string
					Epoch            uint64
					PreviousEpoch    uint64 `json:"previous_epoch"`
				}
				if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "hand-over" {
					continue
				}
				got[fmt.Sprintf("%s %d->%d by %s", rec.Topic, rec.PreviousEpoch, rec.Epoch, rec.Node)]++
			}
		}
		for k := range want {
			if got[k] != 1 {
				return fmt.Errorf("hand-over %s logged %d times", k, got[k])
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("%d hand-overs logged, %d in the store", len(got), len(want))
		}
		return nil
	})
}

// TestEveryAlertTested: every alert of deploy/prometheus/alerts.yml is
// waited for (waitFiring) by a test of this package, which causes its
// condition for real: a new alert without such a test fails here.
func TestEveryAlertTested(t *testing.T) {
	rules, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)$`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 {
		t.Fatal("no alert in alerts.yml")
	}
	for _, a := range alerts {
		if !strings.Contains(src.String(), `waitFiring("`+a[1]+`"`) {
			t.Errorf("alert %s fires in no test of this package", a[1])
		}
	}
}
