package metrics

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-pub/baton"
)

// statusTimeout bounds the status read of a scrape; keep Prometheus'
// scrape_timeout above it.
const statusTimeout = 500 * time.Millisecond

// topicCollector reads the node's status at each scrape: what a topic's
// gauges say is what GET /v1/status and /v1/topics say at that moment.
//
// A scrape never reads every topic: the per-topic gauges cover at most
// MaxTopicLabels topics, those this node publishes first (in name order),
// then the store's first topics in name order; three store reads each.
// The topics this node publishes past the bound count under OtherTopics in
// baton_topic_publishing only (any other gauge of them would need their
// reads). The whole store is seen through the counts: baton_topics and
// baton_topics_unheld, and baton_node_problems.
type topicCollector struct{ m *Metrics }

var (
	lagDesc = prometheus.NewDesc("baton_topic_lag_items",
		"Items appended to the topic but not yet published (last seq minus the cursor).", []string{"topic"}, nil)
	publishingDesc = prometheus.NewDesc("baton_topic_publishing",
		"1 while this node holds the topic's lease and publishes it.", []string{"topic"}, nil)
	heldDesc = prometheus.NewDesc("baton_topic_held",
		"1 while some node holds the topic's lease; 0: no publisher.", []string{"topic"}, nil)
	terminalsDesc = prometheus.NewDesc("baton_terminals",
		"Terminals (event streams) connected to this node, by topic.", []string{"topic"}, nil)
	ledgerSizeDesc = prometheus.NewDesc("baton_ledger_leaves",
		"Leaves in this node's copy of the topic's ledger.", []string{"topic"}, nil)
	alarmsDesc = prometheus.NewDesc("baton_ledger_witness_alarms",
		"Checkpoints or leaves this node's witness refused for the topic (forged, inconsistent, epochs going back).", []string{"topic"}, nil)
	haltedDesc = prometheus.NewDesc("baton_topic_halted",
		"1 while this node's witness halts the topic: the store lost ledger writes its copy holds (docs/ledger.md, \"Lost writes and re-anchoring\"); check names the check that failed.", []string{"topic", "check"}, nil)
	topicsDesc = prometheus.NewDesc("baton_topics",
		"Topics in the store.", nil, nil)
	unheldDesc = prometheus.NewDesc("baton_topics_unheld",
		"Topics in the store minus the leases the live members hold, as their heartbeats report them: topics without a publisher.", nil, nil)
	problemsDesc = prometheus.NewDesc("baton_node_problems",
		"Problems that keep this node from being ready (GET /readyz), by kind: store, heartbeat, stalled, ledger, notifications, lease.", []string{"kind"}, nil)
	statusUpDesc = prometheus.NewDesc("baton_status_up",
		"1 if the node's status could be read at this scrape (the store answered).", nil, nil)
)

// problemKinds are the kinds baton_node_problems always has a series for.
var problemKinds = []string{baton.ProblemStore, baton.ProblemHeartbeat, baton.ProblemStalled, baton.ProblemLedger, baton.ProblemNotify, baton.ProblemLease}

func (c *topicCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagDesc, publishingDesc, heldDesc, terminalsDesc, ledgerSizeDesc, alarmsDesc, haltedDesc,
		topicsDesc, unheldDesc, problemsDesc, statusUpDesc} {
		ch <- d
	}
}

func (c *topicCollector) Collect(ch chan<- prometheus.Metric) {
	// Short: a store that hangs must not make the whole scrape time out,
	// which would hide every other metric exactly when they matter.
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	bound := c.m.cfg.MaxTopicLabels
	var mine []string
	if c.m.cfg.Publishing != nil {
		mine = c.m.cfg.Publishing()
		slices.Sort(mine)
	}
	over := max(len(mine)-bound, 0)
	mine = mine[:len(mine)-over]
	st, err := c.m.cfg.Status(ctx, bound-len(mine))
	var topics []baton.TopicStatus
	if err == nil && len(mine) > 0 && c.m.cfg.TopicStatuses != nil {
		topics, err = c.m.cfg.TopicStatuses(ctx, mine)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(statusUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(statusUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(topicsDesc, prometheus.GaugeValue, float64(st.Counts.Topics))
	ch <- prometheus.MustNewConstMetric(unheldDesc, prometheus.GaugeValue, float64(st.Counts.Unheld))
	problems := make(map[string]float64, len(problemKinds))
	for _, p := range st.Problems {
		problems[p.Kind]++
	}
	for _, k := range problemKinds {
		ch <- prometheus.MustNewConstMetric(problemsDesc, prometheus.GaugeValue, problems[k], k)
	}
	for _, t := range st.Topics {
		if _, dup := slices.BinarySearch(mine, t.Topic); !dup {
			topics = append(topics, t)
		}
	}
	for _, t := range topics {
		var publishing, held, leaves, alarms, halted float64
		var check string
		if t.Role == baton.RoleActive {
			publishing = 1
		}
		if t.Held {
			held = 1
		}
		if t.Ledger != nil {
			leaves, alarms = float64(t.Ledger.Size), float64(t.Ledger.Alarms)
			if h := t.Ledger.Halted; h != nil {
				halted, check = 1, h.Check
			}
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(t.QueueDepth), t.Topic)
		ch <- prometheus.MustNewConstMetric(publishingDesc, prometheus.GaugeValue, publishing, t.Topic)
		ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, held, t.Topic)
		ch <- prometheus.MustNewConstMetric(terminalsDesc, prometheus.GaugeValue, float64(t.Terminals), t.Topic)
		ch <- prometheus.MustNewConstMetric(ledgerSizeDesc, prometheus.GaugeValue, leaves, t.Topic)
		ch <- prometheus.MustNewConstMetric(alarmsDesc, prometheus.GaugeValue, alarms, t.Topic)
		ch <- prometheus.MustNewConstMetric(haltedDesc, prometheus.GaugeValue, halted, t.Topic, check)
	}
	if over > 0 {
		ch <- prometheus.MustNewConstMetric(publishingDesc, prometheus.GaugeValue, float64(over), OtherTopics)
	}
}
