// Package metrics defines walhook's Prometheus metrics. Collectors live in a
// Metrics value registered on a registry the caller owns: there is no global
// registry. Label values come from small fixed sets (outcomes, result
// classes), never from ids, so cardinality stays bounded.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Event outcomes.
const (
	EventRouted       = "routed"
	EventNoSubscriber = "no_subscriber"
	EventDeadLettered = "dead_lettered"
)

// Dead-letter reason classes.
const (
	DeadInvalidJSON = "invalid_json"
	DeadEmptyType   = "empty_type"
	DeadTooLarge    = "too_large"
	DeadPayloadKind = "payload_kind"
	DeadOther       = "other"
)

// Endpoint states.
const (
	EndpointActive      = "active"
	EndpointPaused      = "paused"
	EndpointDisabled    = "disabled"
	EndpointCircuitOpen = "circuit_open"
)

// Attempt result classes.
const (
	Class2xx       = "2xx"
	Class3xx       = "3xx"
	Class4xx       = "4xx"
	Class5xx       = "5xx"
	ClassTimeout   = "timeout"
	ClassConnError = "connection_error"
	ClassBlocked   = "blocked"
)

// Metrics holds every collector walhook exports.
type Metrics struct {
	Events          *prometheus.CounterVec
	DeadLetters     *prometheus.CounterVec
	Deliveries      *prometheus.CounterVec
	Attempts        *prometheus.CounterVec
	AttemptDuration prometheus.Histogram
	EndToEnd        prometheus.Histogram
	InFlight        prometheus.Gauge
	RetryScheduled  prometheus.Gauge
	RetryDue        prometheus.Gauge
	ReceivedLSN     prometheus.Gauge
	ConfirmedLSN    prometheus.Gauge
	StreamConnected prometheus.Gauge
	ReadAheadBytes  prometheus.Gauge
	SpillBytes      prometheus.Gauge
	SpilledBytes    prometheus.Counter
	BatchRows       prometheus.Histogram
	FlushDuration   prometheus.Histogram
	BuildInfo       *prometheus.GaugeVec

	perEndpoint *endpointCounter // nil unless PerEndpoint was called
	// children are the labelled counters of the hot path, resolved once in
	// New and only read after: a vector's lookup hashes its labels on
	// every call.
	children map[*prometheus.CounterVec]map[string]prometheus.Counter
}

// Inc adds one to vec's counter for label (vec has one label).
func (m *Metrics) Inc(vec *prometheus.CounterVec, label string) {
	if c, ok := m.children[vec][label]; ok {
		c.Inc()
		return
	}
	vec.WithLabelValues(label).Inc()
}

// resolve creates vec's counters for labels, so they are exported at zero
// and found by Inc without a lookup in vec.
func (m *Metrics) resolve(vec *prometheus.CounterVec, labels ...string) {
	by := map[string]prometheus.Counter{}
	for _, l := range labels {
		by[l] = vec.WithLabelValues(l)
	}
	m.children[vec] = by
}

// endpointCounter labels final outcomes with endpoint ids, for at most limit
// endpoints: ids are unbounded, so later ones share endpoint_id="_other".
type endpointCounter struct {
	vec   *prometheus.CounterVec
	limit int
	mu    sync.Mutex
	seen  map[string]bool
}

// PerEndpoint turns on walhook_endpoint_deliveries_total{endpoint_id,status}
// for the first limit endpoints seen (metrics.endpoint_labels).
func (m *Metrics) PerEndpoint(reg prometheus.Registerer, limit int) {
	if limit <= 0 {
		return
	}
	c := &endpointCounter{limit: limit, seen: map[string]bool{}, vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "walhook_endpoint_deliveries_total",
		Help: "Deliveries that reached a final status, per endpoint (first metrics.endpoint_labels endpoints; the rest as _other).",
	}, []string{"endpoint_id", "status"})}
	reg.MustRegister(c.vec)
	m.perEndpoint = c
}

// EndpointOutcome counts a delivery's final status for its endpoint; a
// no-op unless PerEndpoint is on.
func (m *Metrics) EndpointOutcome(endpointID, status string) {
	c := m.perEndpoint
	if c == nil {
		return
	}
	c.mu.Lock()
	if !c.seen[endpointID] {
		if len(c.seen) >= c.limit {
			endpointID = "_other"
		} else {
			c.seen[endpointID] = true
		}
	}
	c.mu.Unlock()
	c.vec.WithLabelValues(endpointID, status).Inc()
}

// New creates the collectors and registers them (with the Go and process
// collectors) on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walhook_events_total", Help: "Outbox events received from the replication stream, by outcome.",
		}, []string{"outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walhook_dead_letters_total", Help: "Outbox rows that could not become events, by reason class.",
		}, []string{"reason"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walhook_deliveries_total", Help: "Deliveries that reached a final status (delivered or failed).",
		}, []string{"status"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walhook_attempts_total", Help: "Delivery attempts by result class.",
		}, []string{"class"}),
		AttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "walhook_attempt_duration_seconds", Help: "Duration of delivery attempts (request sent to response read).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		EndToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "walhook_end_to_end_latency_seconds", Help: "From the source transaction's commit to a 2xx answer of the first attempt.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_inflight_requests", Help: "Webhook requests under way.",
		}),
		RetryScheduled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_retry_scheduled", Help: "Deliveries waiting in the scheduler for a later attempt.",
		}),
		RetryDue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_retry_due", Help: "Deliveries due for an attempt but not yet sent.",
		}),
		ReceivedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_replication_received_lsn", Help: "Highest WAL position received from the slot.",
		}),
		ConfirmedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_replication_confirmed_lsn", Help: "WAL position confirmed to Postgres (everything before it is recorded).",
		}),
		StreamConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_replication_connected", Help: "1 while the replication stream is connected.",
		}),
		ReadAheadBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_replication_read_ahead_bytes", Help: "Bytes of transactions received and in memory for the pipeline, the one it is handling included (replication.read_ahead_bytes bounds it).",
		}),
		SpillBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walhook_replication_spill_bytes", Help: "Bytes of transactions received and waiting in the read-ahead's file: a backlog walhook is working through (replication.spill_bytes bounds what is written to the file until it is empty again).",
		}),
		SpilledBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walhook_replication_spilled_bytes_total", Help: "Bytes of transactions written to the read-ahead's file: how often, and how far, backlogs outgrew replication.read_ahead_bytes.",
		}),
		BatchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "walhook_store_batch_rows", Help: "Rows written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		FlushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "walhook_store_flush_duration_seconds", Help: "Duration of one group commit.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "walhook_build_info", Help: "Build information; always 1.",
		}, []string{"version", "goversion"}),
	}
	reg.MustRegister(m.Events, m.DeadLetters, m.Deliveries, m.Attempts, m.AttemptDuration, m.EndToEnd, m.InFlight,
		m.RetryScheduled, m.RetryDue, m.ReceivedLSN, m.ConfirmedLSN, m.StreamConnected, m.ReadAheadBytes, m.SpillBytes, m.SpilledBytes, m.BatchRows, m.FlushDuration, m.BuildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.children = map[*prometheus.CounterVec]map[string]prometheus.Counter{}
	m.resolve(m.Events, EventRouted, EventNoSubscriber, EventDeadLettered)
	m.resolve(m.DeadLetters, DeadInvalidJSON, DeadEmptyType, DeadTooLarge, DeadPayloadKind, DeadOther)
	m.resolve(m.Deliveries, "delivered", "failed")
	m.resolve(m.Attempts, Class2xx, Class3xx, Class4xx, Class5xx, ClassTimeout, ClassConnError, ClassBlocked)
	return m
}

// Discard returns metrics registered nowhere, for tests and tools.
func Discard() *Metrics { return New(prometheus.NewRegistry()) }

// EndpointStates exports walhook_endpoints{state}: counts returns the number
// of endpoints in each state (EndpointActive, ...), read at scrape time.
func EndpointStates(reg prometheus.Registerer, counts func() map[string]int) {
	desc := prometheus.NewDesc("walhook_endpoints", "Endpoints by state (active, paused, disabled, circuit_open).", []string{"state"}, nil)
	reg.MustRegister(&endpointStates{desc: desc, counts: counts})
}

type endpointStates struct {
	desc   *prometheus.Desc
	counts func() map[string]int
}

func (e *endpointStates) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

func (e *endpointStates) Collect(ch chan<- prometheus.Metric) {
	n := e.counts()
	for _, s := range []string{EndpointActive, EndpointPaused, EndpointDisabled, EndpointCircuitOpen} {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, float64(n[s]), s)
	}
}
