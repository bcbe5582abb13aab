// Package metrics exports a node's metrics for Prometheus
// (github.com/prometheus/client_golang): the store operations and what
// they say about the data path (items appended and published, leases
// taken, renewed and lost, hand-overs), the HTTP API, and, at each scrape,
// the node's topic counts and a bounded set of topics' lag, terminals and
// ledger as the node sees them.
// docs/operations.md lists every metric.
package metrics

import (
	"context"
	nethttp "net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// OtherTopics is the topic label of every topic past Config.MaxTopicLabels.
const OtherTopics = "_other"

// Config configures Metrics.
type Config struct {
	// MaxTopicLabels bounds the topics that get a label of their own
	// (default 100); the others are summed under OtherTopics, so that the
	// number of series stays bounded whatever the number of topics.
	MaxTopicLabels int
	// Status, if set, is read at each scrape for the node's topic counts
	// and the per-topic gauges: the node's summary with the statuses of its
	// first topics in name order, at most the number asked for
	// (node.Node.Status). Publishing lists the topics this node publishes
	// (in memory) and TopicStatuses reads the named topics' statuses: the
	// topics this node publishes get their labels first (see topics.go).
	Status        func(ctx context.Context, topics int) (wire.Status, error)
	Publishing    func() []string
	TopicStatuses func(ctx context.Context, topics []string) ([]baton.TopicStatus, error)
}

// Metrics holds a node's metrics, in a registry of its own.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry

	storeSeconds *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	appended     *prometheus.CounterVec
	published    *prometheus.CounterVec
	onAppend     prometheus.Counter
	batch        prometheus.Histogram
	acquired     prometheus.Counter
	renewFailed  prometheus.Counter
	failClosed   prometheus.Counter
	released     *prometheus.CounterVec
	handovers    *prometheus.CounterVec
	handoverSec  prometheus.Histogram
	checkpoints  prometheus.Counter
	cosigned     prometheus.Counter
	requests     *prometheus.HistogramVec
	streamsEnded *prometheus.CounterVec
	forwards     *prometheus.CounterVec

	mu     sync.Mutex
	topics map[string]bool // topics with a label of their own
}

// New returns metrics with the Go runtime and process collectors.
func New(cfg Config) *Metrics {
	if cfg.MaxTopicLabels <= 0 {
		cfg.MaxTopicLabels = 100
	}
	m := &Metrics{cfg: cfg, reg: prometheus.NewRegistry(), topics: make(map[string]bool)}
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m.storeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_store_operation_duration_seconds",
		Help: "Duration of store operations, by operation (renew_node is the node lease renewal).", Buckets: latency}, []string{"operation"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_store_operation_errors_total",
		Help: "Store operations that failed, by operation and error code (conflict: a lease or cursor changed; unavailable: the store)."}, []string{"operation", "code"})
	m.appended = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_items_appended_total",
		Help: "Items this node appended to topics' queues (duplicates of a msg_id not counted)."}, []string{"topic"})
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_items_published_total",
		Help: "Items this node published (committed under its lease)."}, []string{"topic"})
	m.onAppend = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_items_published_on_append_total",
		Help: "Items this node published with their append (baton.AppendPublisher): counted in baton_items_published_total too."})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_publish_batch_items",
		Help: "Items per commit of this node's publishers.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)})
	m.acquired = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_lease_acquisitions_total",
		Help: "Topic leases this node acquired."})
	m.renewFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_lease_renew_failures_total",
		Help: "Lease renewals of this node that failed (the lease may be lost: see baton_lease_releases_total)."})
	m.failClosed = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_lease_fail_closed_total",
		Help: "Topic leases this node stopped publishing under because its node lease could not be renewed in time (it failed closed: the topics move)."})
	m.released = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_lease_releases_total",
		Help: "Leases this node released, by reason (released: graceful; failed: its publisher failed)."}, []string{"reason"})
	m.handovers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_handovers_total",
		Help: "Hand-overs to this node: leases it acquired after another ended, by the reason the previous one ended."}, []string{"reason"})
	m.handoverSec = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_handover_duration_seconds",
		Help:    "From the end of the previous lease (release, or expiry) to this node's acquisition, on the store's clock.",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2, 3, 5, 10, 30}})
	m.checkpoints = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_ledger_checkpoints_signed_total",
		Help: "Ledger checkpoints this node signed and stored as publisher."})
	m.cosigned = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_ledger_cosignatures_total",
		Help: "Cosignatures this node's witness added to other publishers' checkpoints."})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_http_request_duration_seconds",
		Help: "HTTP API requests, by route, method and status (an event stream counts when it opens).", Buckets: latency},
		[]string{"route", "method", "code"})
	m.streamsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_streams_ended_total",
		Help: "Event streams that ended, by why: slow (the terminal fell too far behind), auth (token expired), other."}, []string{"reason"})
	m.forwards = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_append_forwards_total",
		Help: "Appends of this node's clients, by where they were made (forward.Forwarder): forwarded (by the topic's lease holder's node), local (here: no forward tried), fallback (here, after a forward failed)."}, []string{"outcome"})
	m.reg.MustRegister(m.storeSeconds, m.storeErrors, m.appended, m.published, m.onAppend, m.batch, m.acquired, m.renewFailed,
		m.failClosed, m.released, m.handovers, m.handoverSec, m.checkpoints, m.cosigned, m.requests, m.streamsEnded, m.forwards,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reason has its series from the start: increase() over a
	// series born at its first hand-over would miss that hand-over, and a
	// storm of them (deploy/prometheus/alerts.yml, BatonHandoverStorm).
	for _, r := range []baton.ReleaseReason{baton.ReasonReleased, baton.ReasonExpired, baton.ReasonFailed, baton.ReasonCrashed} {
		m.handovers.WithLabelValues(string(r))
	}
	if cfg.Status != nil {
		m.reg.MustRegister(&topicCollector{m: m})
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() nethttp.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// topic is the label of topic: itself while fewer than MaxTopicLabels
// topics have one, else OtherTopics.
func (m *Metrics) topic(t string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.topics[t] {
		return t
	}
	if len(m.topics) >= m.cfg.MaxTopicLabels {
		return OtherTopics
	}
	m.topics[t] = true
	return t
}

// Request records one HTTP request (http.Observer).
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// Handover records a hand-over to this node, with the record of the lease
// it followed (node.Config.OnHandover).
func (m *Metrics) Handover(r baton.ReleaseRecord) {
	m.handovers.WithLabelValues(string(r.Reason)).Inc()
	if d := r.Handover(); d >= 0 {
		m.handoverSec.Observe(d.Seconds())
	}
}

// Forward records the outcome of one append of this node's clients
// (forward.Config.Observe).
func (m *Metrics) Forward(outcome string) { m.forwards.WithLabelValues(outcome).Inc() }

// FailClosed records a topic lease given up because the node lease could
// not be renewed in time (node.Config.OnFailClosed).
func (m *Metrics) FailClosed(string) { m.failClosed.Inc() }

// StreamEnded records why an event stream ended (http.Observer).
func (m *Metrics) StreamEnded(reason string) { m.streamsEnded.WithLabelValues(reason).Inc() }

// WitnessWork is what the metrics read of this node's witness
// (ledger.Witness).
type WitnessWork interface {
	Backlog() (now, later int)
	Rounds() uint64
}

// Witness reports the work of this node's witness, read at each scrape.
// Call it once.
func (m *Metrics) Witness(w WitnessWork) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_witness_rounds_total",
			Help: "Rounds this node's witness ran (each reads a topic's new leaves and checkpoints): its cost per change of a topic."},
			func() float64 { return float64(w.Rounds()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_witness_rounds_ready",
			Help: "Rounds of this node's witness ready or running: topics whose new leaves or checkpoints it has yet to check (0 to a few when caught up)."},
			func() float64 { now, _ := w.Backlog(); return float64(now) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_witness_rounds_scheduled",
			Help: "Topics with a round of this node's witness scheduled later: follow-ups after a change, cosignatures and saves waiting their turn (0 once every topic has settled)."},
			func() float64 { _, later := w.Backlog(); return float64(later) }))
}

// Streams reports the node's event streams: open (how many are open) and
// gap (the coalescing gap of busy streams' writes, http/stream_coalesce.go),
// read at each scrape. Call it once.
func (m *Metrics) Streams(open func() int, gap func() time.Duration) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_streams_open",
			Help: "Event streams (SSE and WebSocket) open on this node."}, func() float64 { return float64(open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_stream_coalesce_gap_seconds",
			Help: "The least time between two writes of a busy event stream now (40 µs per busy stream, up to --sse-coalesce): how long an event may wait to go out with others."},
			func() float64 { return gap().Seconds() }))
}
