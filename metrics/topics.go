package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-pub/baton"
)

// statusTimeout bounds the status read of a scrape; keep Prometheus'
// scrape_timeout above it.
const statusTimeout = 500 * time.Millisecond

// topicCollector reads the node's status at each scrape: what a topic's
// gauges say is what /v1/status says at that moment.
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
	topicsDesc = prometheus.NewDesc("baton_topics",
		"Topics this node knows.", nil, nil)
	statusUpDesc = prometheus.NewDesc("baton_status_up",
		"1 if the node's status could be read at this scrape (the store answered).", nil, nil)
)

func (c *topicCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagDesc, publishingDesc, heldDesc, terminalsDesc, ledgerSizeDesc, alarmsDesc, topicsDesc, statusUpDesc} {
		ch <- d
	}
}

func (c *topicCollector) Collect(ch chan<- prometheus.Metric) {
	// Short: a store that hangs must not make the whole scrape time out,
	// which would hide every other metric exactly when they matter.
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st, err := c.m.cfg.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(statusUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(statusUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(topicsDesc, prometheus.GaugeValue, float64(len(st.Topics)))
	type sums struct{ lag, publishing, held, terminals, leaves, alarms float64 }
	by := make(map[string]*sums)
	var order []string
	for _, t := range st.Topics {
		label := c.m.topic(t.Topic)
		s := by[label]
		if s == nil {
			s = &sums{}
			by[label] = s
			order = append(order, label)
		}
		s.lag += float64(t.QueueDepth)
		if t.Role == baton.RoleActive {
			s.publishing++
		}
		if t.Held {
			s.held++
		}
		s.terminals += float64(t.Terminals)
		if t.Ledger != nil {
			s.leaves += float64(t.Ledger.Size)
			s.alarms += float64(t.Ledger.Alarms)
		}
	}
	for _, label := range order {
		s := by[label]
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, s.lag, label)
		ch <- prometheus.MustNewConstMetric(publishingDesc, prometheus.GaugeValue, s.publishing, label)
		ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, s.held, label)
		ch <- prometheus.MustNewConstMetric(terminalsDesc, prometheus.GaugeValue, s.terminals, label)
		ch <- prometheus.MustNewConstMetric(ledgerSizeDesc, prometheus.GaugeValue, s.leaves, label)
		ch <- prometheus.MustNewConstMetric(alarmsDesc, prometheus.GaugeValue, s.alarms, label)
	}
}
