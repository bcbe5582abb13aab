package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/baton-pub/baton/internal/leasetest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/sqlite"
)

// prometheus is a real Prometheus server scraping nodes every second with
// deploy/prometheus/alerts.yml, its "for" durations cut to 2 s (the
// expressions are the ones operators run).
type prometheus struct {
	t   *testing.T
	url string
}

func startPrometheus(t *testing.T, targets []string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not found (apt-get install prometheus); CI is set, so this is a failure")
		}
		t.Skip("prometheus not found (apt-get install prometheus)")
	}
	rules, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fast := regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 2s"))
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), fast, 0o600); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: baton
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("--- prometheus log:\n%s", tail(b, 4096))
		}
	})
	p := &prometheus{t: t, url: "http://" + addr}
	poll.True(t, 60*time.Second, "prometheus ready", func() bool {
		resp, err := httpc.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// firing lists the labels of the firing alerts named name.
func (p *prometheus) firing(name string) []map[string]string {
	resp, err := httpc.Get(p.url + "/api/v1/alerts")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil
	}
	var got []map[string]string
	for _, a := range out.Data.Alerts {
		if a.Labels["alertname"] == name && a.State == "firing" {
			got = append(got, a.Labels)
		}
	}
	return got
}

// waitFiring waits until alert name fires with the given labels.
func (p *prometheus) waitFiring(name string, labels map[string]string) {
	p.t.Helper()
	poll.True(p.t, 90*time.Second, name+" firing", func() bool {
		for _, got := range p.firing(name) {
			ok := true
			for k, v := range labels {
				ok = ok && got[k] == v
			}
			if ok {
				return true
			}
		}
		return false
	})
}

func metricsTarget(n *proc.Node) string { return n.Addr }

// waitScraped waits until Prometheus has scraped query's series and
// returns its value.
func (p *prometheus) waitScraped(query string) float64 {
	p.t.Helper()
	var v float64
	poll.True(p.t, 60*time.Second, "prometheus to scrape "+query, func() bool {
		var ok bool
		v, ok = p.value(query)
		return ok
	})
	return v
}

// value is the value of query's first series now, if it has one.
func (p *prometheus) value(query string) (float64, bool) {
	resp, err := httpc.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil || len(out.Data.Result) == 0 {
		return 0, false
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// TestAlertsFireForReal causes each alert's condition with real nodes, a
// real store and a real Prometheus evaluating deploy/prometheus/alerts.yml,
// and waits for the alert: a topic left without a publisher (the only
// node is full; per topic and in the count over every topic), a witness
// alarm (a checkpoint signed by a key nobody registered, written straight
// into the store), lag past 10,000 and
// growing (sources go on appending to the orphan), renewals failing and
// the node not ready (its Redis paused). BatonHandoverStorm has its own
// test (TestHandoverStormFiresForReal, alerts_storm_test.go).
func TestAlertsFireForReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus, Redis and real nodes")
	}
	t.Run("sqlite", func(t *testing.T) {
		store := sqliteEngine(t)
		c := newClusterWith(t, func(*testing.T) string { return store }, 1, testTTL, "", "--max-leases", "1")
		p := startPrometheus(t, []string{metricsTarget(c.nodes[0])})
		path := strings.TrimPrefix(store, "sqlite://")
		st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		for _, topic := range []string{"first", "second"} {
			u, _ := baton.Normalize(baton.Update{ID: "k", Value: []byte("1")})
			if _, err := st.Append(ctx, topic, []baton.Update{u}); err != nil {
				t.Fatal(err)
			}
		}
		// The node publishes one topic (--max-leases 1); the other has none.
		var orphan string
		poll.True(t, 30*time.Second, "one topic held, the other not", func() bool {
			a, _ := st.Lock(ctx, "first")
			b, _ := st.Lock(ctx, "second")
			switch {
			case a.Held && !b.Held:
				orphan = "second"
			case b.Held && !a.Held:
				orphan = "first"
			}
			return orphan != ""
		})
		p.waitFiring("BatonTopicWithoutPublisher", map[string]string{"topic": orphan})
		// The count over every topic says the same.
		p.waitFiring("BatonTopicsWithoutPublisher", nil)

		// With no publisher its lag only grows: past 10,000 and rising.
		stop := make(chan struct{})
		grown := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					grown <- nil
					return
				default:
				}
				batch := make([]baton.Update, 500)
				for j := range batch {
					batch[j], _ = baton.Normalize(baton.Update{ID: "k", Value: []byte(strconv.Itoa(i*500 + j))})
				}
				if _, err := st.Append(ctx, orphan, batch); err != nil {
					grown <- err
					return
				}
			}
		}()
		p.waitFiring("BatonLagGrowing", map[string]string{"topic": orphan})
		close(stop)
		if err := <-grown; err != nil {
			t.Fatal(err)
		}

		// Mallory takes the orphan's lease behind the node's back, commits
		// and signs a checkpoint with a key nobody registered.
		l, err := leasetest.Acquire(ctx, st, orphan, "mallory", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// From the cursor: on a loaded machine the node may have lost
		// its renewals, given "first" up and published the orphan for a
		// while before Mallory came.
		cur, err := st.Cursor(ctx, orphan)
		if err != nil {
			t.Fatal(err)
		}
		items, err := st.Items(ctx, orphan, cur.Seq, 10)
		if err != nil || len(items) == 0 {
			t.Fatalf("items of %s after %d: %d, %v", orphan, cur.Seq, len(items), err)
		}
		if _, err := st.Commit(ctx, baton.Commit{Topic: orphan, Epoch: l.Epoch, Holder: "mallory", PrevSeq: cur.Seq, Items: items, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		mkey, _ := ledger.GenerateKey("mallory")
		var root baton.Hash
		root[0] = 0xba
		size := cur.Seq + uint64(len(items))
		cp, err := ledger.Sign(ledger.Body{Topic: orphan, Size: size, Root: root, Epoch: l.Epoch, Node: "mallory"}, mkey)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
		p.waitFiring("BatonWitnessAlarm", map[string]string{"topic": orphan})
	})
	t.Run("redis", func(t *testing.T) {
		r := redistest.Start(t, redistest.Options{KeyspaceEvents: "Ex"})
		c := newClusterWith(t, func(*testing.T) string { return r.URL(0) + "?dial_timeout=200ms" }, 1, testTTL, "")
		p := startPrometheus(t, []string{metricsTarget(c.nodes[0])})
		// Twenty topics published by the node, then its Redis paused:
		// every renewal fails.
		for i := range 20 {
			publishOne(t, c, fmt.Sprintf("t%d", i))
		}
		poll.True(t, 30*time.Second, "twenty topics published", func() bool {
			return scrape(t, c.nodes[0].URL()+"/metrics", "baton_lease_acquisitions_total") >= 20
		})
		// Prometheus must have seen the counters before the failures, or
		// it sees no increase. A renewal or two may already have failed on
		// a loaded machine (its dial timeout is 200 ms): far below the
		// rule's rate, which takes 15 failures in 5 minutes.
		before := p.waitScraped("baton_lease_renew_failures_total")
		if before >= 15 {
			t.Fatalf("%v renewals failed before Redis was paused", before)
		}
		r.Pause()
		p.waitFiring("BatonLeaseRenewalsFailing", nil)
		p.waitFiring("BatonNodeNotReady", nil)
		// Its renewals failing, the node gave its topics up, fail-closed.
		if v := scrape(t, c.nodes[0].URL()+"/metrics", "baton_lease_fail_closed_total"); v < 1 {
			t.Errorf("baton_lease_fail_closed_total = %v after renewals failed for minutes", v)
		}
		r.Resume()
	})
}

// publishOne appends one item to topic through the first node.
func publishOne(t *testing.T, c *cluster, topic string) {
	t.Helper()
	resp, err := httpc.Post(c.nodes[0].URL()+"/v1/topics/"+topic+"/items", "application/json", strings.NewReader(`{"id":"k","value":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("publish to %s: %d", topic, resp.StatusCode)
	}
}
