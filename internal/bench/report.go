package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Report is the outcome of one run. Rates are per second of the measured
// window: from the measured phase's first transaction (catch-up: from
// walhook's start) to the last expected delivery read by a receiver.
type Report struct {
	Settings Settings `json:"settings"`
	// Complete: every expected delivery was answered 2xx before the
	// deadline; otherwise Missing says what was not.
	Complete bool     `json:"complete"`
	Missing  *Missing `json:"missing,omitempty"`

	Events             int64 `json:"events"` // committed in the measured phase
	WarmupEvents       int64 `json:"warmup_events"`
	ExpectedDeliveries int64 `json:"expected_deliveries"`
	// Deliveries are distinct (endpoint, event) pairs answered 2xx.
	Deliveries int64 `json:"deliveries"`
	// Requests walhook sent to answering endpoints for measured events,
	// retries included.
	Requests int64 `json:"requests"`
	// Receivers totals over the whole run (warm-up, and the events after a
	// catch-up's backlog, included).
	Receivers receiverCounts `json:"receivers"`
	// HangRequests reached the endpoints that never answer.
	HangRequests int64 `json:"hang_requests"`

	WindowSeconds    float64 `json:"window_seconds"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// EventsPerSec is DeliveriesPerSec over the answering endpoints: events
	// fully fanned out per second.
	EventsPerSec float64       `json:"events_per_sec"`
	Producer     ProducerStats `json:"producer"`

	// Latency from the producer's COMMIT returning to a receiver having read
	// the first request of the delivery; LatencyToOK to the request it
	// answered 2xx (differs only with failures).
	Latency     Latency `json:"latency_ms"`
	LatencyToOK Latency `json:"latency_to_ok_ms"`
	// AfterBacklog (catch-up runs): the events committed once the backlog
	// was delivered, measured on their own.
	AfterBacklog *AfterBacklog `json:"after_backlog,omitempty"`

	Walhook  WalhookStats  `json:"walhook"`
	Postgres PostgresStats `json:"postgres"`
	Machine  MachineStats  `json:"machine"`
	Ceilings Ceilings      `json:"ceilings"`
	Ratios   Ratios        `json:"ratios"`
	// TempDir is set when it was kept (-keep).
	TempDir string `json:"temp_dir,omitempty"`
}

// AfterBacklog is how new events fare once a backlog is delivered.
// The Postgres figures of the report (rows and WAL per delivery) include
// these events: 2,000 against a backlog of 100,000, 2%.
type AfterBacklog struct {
	Events       int64   `json:"events"`
	Rate         float64 `json:"rate"` // target events/s, single-row transactions
	AchievedRate float64 `json:"achieved_rate"`
	Latency      Latency `json:"latency_ms"`
	// Missing deliveries of these events (they count in Report.Missing too).
	Missing int64 `json:"missing"`
	// WALToDecodeBytes is the WAL the walsender had yet to read when the
	// backlog was delivered: mostly what walhook wrote meanwhile, which
	// the first of these events wait behind. -1: unknown.
	WALToDecodeBytes int64 `json:"wal_to_decode_bytes"`
}

// Settings echo the run's configuration.
type Settings struct {
	Mode             string            `json:"mode"` // events, duration or catchup
	Events           int64             `json:"events,omitempty"`
	Duration         string            `json:"duration,omitempty"`
	Rate             float64           `json:"rate"`
	Conns            int               `json:"conns"`
	RowsPerTxn       int               `json:"rows_per_txn"`
	PayloadBytes     int               `json:"payload_bytes"`
	Endpoints        int               `json:"endpoints"`
	HangEndpoints    int               `json:"hang_endpoints"`
	ReceiverLatency  string            `json:"receiver_latency"`
	FailureRatio     float64           `json:"failure_ratio"`
	Warmup           string            `json:"warmup"`
	EndpointInflight int               `json:"endpoint_inflight"`
	ReceiverServer   string            `json:"receiver_server"`
	StateServer      bool              `json:"state_server"`
	Walhook          map[string]string `json:"walhook"`  // settings passed as WALHOOK_* (secrets and addresses left out)
	Postgres         map[string]string `json:"postgres"` // server settings
}

// Missing describes expected deliveries that never arrived.
type Missing struct {
	Deliveries  int64             `json:"deliveries"`
	PerEndpoint []EndpointMissing `json:"per_endpoint"`
	// AfterBacklog of Deliveries are of the events committed after a
	// catch-up's backlog; PerEndpoint covers the others.
	AfterBacklog int64 `json:"after_backlog,omitempty"`
}

// EndpointMissing is what one endpoint lacks.
type EndpointMissing struct {
	Endpoint int   `json:"endpoint"` // index, from 0
	Missing  int64 `json:"missing"`
	// FailedOnly were requested but never answered 2xx (still retrying).
	FailedOnly int64   `json:"failed_only"`
	Sample     []int64 `json:"sample_seqs"`
}

// Latency percentiles in milliseconds (nearest rank).
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
}

// ProducerStats is the measured phase's producer.
type ProducerStats struct {
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	TargetRate   float64 `json:"target_rate"` // 0 = as fast as possible
}

// WalhookStats is walhook's process during the measured window.
type WalhookStats struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPer1000 is CPU seconds per 1,000 deliveries.
	CPUPer1000 float64 `json:"cpu_seconds_per_1000_deliveries"`
	// Cores is the average number of cores busy with walhook.
	Cores     float64 `json:"cores"`
	PeakRSS   int64   `json:"peak_rss_bytes"`
	PeakScope string  `json:"peak_rss_scope"` // "window", or "process" when VmHWM could not be reset
	RSS       int64   `json:"rss_bytes_at_end"`
	ExitError string  `json:"exit_error,omitempty"`
	// Metrics are deltas of walhook's counters over the window (gauges:
	// value at its end).
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	AvgBatchRows float64            `json:"avg_store_batch_rows"`
	AvgFlushMs   float64            `json:"avg_store_flush_ms"`
	Log          logSummary         `json:"log"`
}

// PostgresStats is Postgres' share. Row counts come from
// pg_stat_user_tables from walhook's start to its stop, warm-up included,
// divided by the deliveries of that span; with a state server, they and the
// WAL bytes are the outbox's server's only.
type PostgresStats struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPer1000 float64 `json:"cpu_seconds_per_1000_deliveries"`
	// ProducerCPUSeconds were spent by the producer's backends; the rest
	// (walhook's backends, its walsender, background work) per 1,000
	// deliveries is WalhookCPUPer1000.
	ProducerCPUSeconds float64 `json:"producer_cpu_seconds"`
	WalhookCPUPer1000  float64 `json:"walhook_cpu_seconds_per_1000_deliveries"`
	// CPUByKind splits CPUSeconds by process: the walsender, walhook's
	// connections, the producer's, background processes, and with
	// -state-server that whole server. Processes that exited during the
	// window are in CPUSeconds only.
	CPUByKind           map[string]float64     `json:"cpu_seconds_by_kind"`
	StatsDeliveries     int64                  `json:"stats_deliveries"`
	InsertedPerDelivery float64                `json:"rows_inserted_per_delivery"`
	UpdatedPerDelivery  float64                `json:"rows_updated_per_delivery"`
	WALBytesPerDelivery float64                `json:"wal_bytes_per_delivery"`
	BySchema            map[string]tupleCounts `json:"by_schema"`
	Tables              map[string]tupleCounts `json:"tables"`
	// StateTables are the state server's tables over the same span.
	StateTables map[string]tupleCounts `json:"state_tables,omitempty"`
}

// MachineStats put the numbers in context: on a small machine walhook,
// Postgres and the bench share the cores.
type MachineStats struct {
	CPUs        int     `json:"cpus"`
	BusyPercent float64 `json:"busy_percent"` // of all cores during the window
	// StealPercent of all cores' time went to other guests of the
	// hypervisor: a noisy neighbour, which slows every part of the run.
	StealPercent    float64 `json:"steal_percent"`
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
	// OtherCPUSeconds is busy machine time outside walhook, Postgres and the
	// bench: other processes and the kernel's own work (e.g. loopback
	// networking in soft interrupts). High values mean a noisy run.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
}

// Ceilings are the machine's own limits, measured in the same run.
type Ceilings struct {
	RawHTTP rawResult `json:"raw_http"`
	// ProducerAlone is the producer's rate into a scratch table with nobody
	// consuming, same connections and rows per transaction, no rate limit.
	ProducerAlonePerSec float64 `json:"producer_alone_events_per_sec"`
}

// Ratios compare walhook with the ceilings.
type Ratios struct {
	DeliveriesVsRawHTTP float64 `json:"deliveries_vs_raw_http"`
	EventsVsProducer    float64 `json:"events_vs_producer_alone"`
	// ProducerVsAlone: how much the producer slowed down with walhook running.
	ProducerVsAlone float64 `json:"producer_vs_alone"`
}

// latency computes percentiles of nanosecond samples; it sorts them.
func latency(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	rank := func(p float64) int64 {
		i := int(p*float64(len(ns))+0.999999) - 1 // ceil(p·n) - 1
		return ns[min(max(i, 0), len(ns)-1)]
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Latency{
		Samples: len(ns),
		P50:     ms(rank(0.50)),
		P90:     ms(rank(0.90)),
		P99:     ms(rank(0.99)),
		Max:     ms(ns[len(ns)-1]),
		Mean:    sum / float64(len(ns)) / 1e6,
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	s := r.Settings
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	rate := "max"
	if s.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", s.Rate)
	}
	what := fmt.Sprintf("%d events", s.Events)
	if s.Mode == "duration" {
		what = "for " + s.Duration
	}
	p("walhook-bench (%s): %s, rate %s, %d conns × %d rows/txn, payload %d B", s.Mode, what, rate, s.Conns, s.RowsPerTxn, s.PayloadBytes)
	p("  endpoints %d (%d hanging), receivers on %s, receiver latency %s, failure ratio %g, endpoint_inflight %d, warm-up %s",
		s.Endpoints, s.HangEndpoints, s.ReceiverServer, s.ReceiverLatency, s.FailureRatio, s.EndpointInflight, s.Warmup)
	if s.StateServer {
		p("  walhook's records on a Postgres server of their own (database.state_url)")
	}
	status := "complete"
	if !r.Complete {
		status = "INCOMPLETE"
	}
	p("")
	p("deliveries      %d of %d expected (%s); %d events measured, %d warm-up", r.Deliveries, r.ExpectedDeliveries, status, r.Events, r.WarmupEvents)
	if m := r.Missing; m != nil {
		for _, e := range m.PerEndpoint {
			p("  endpoint %d: %d missing (%d requested but never 2xx), e.g. seq %v", e.Endpoint, e.Missing, e.FailedOnly, e.Sample)
		}
		if m.AfterBacklog > 0 {
			p("  %d deliveries of the events committed after the backlog missing", m.AfterBacklog)
		}
	}
	rc := r.Receivers
	p("requests        %d for measured events; run totals: %d requests, %d answered 500 on purpose, %d duplicate 2xx, %d duplicate events, %d bad signatures, %d unparsable",
		r.Requests, rc.Requests, rc.Failed, rc.DuplicateOK, rc.DuplicateEvents, rc.BadSignatures, rc.Unparsable)
	if s.HangEndpoints > 0 {
		p("hanging         %d requests reached the %d endpoints that never answer", r.HangRequests, s.HangEndpoints)
	}
	p("")
	p("window          %.2f s", r.WindowSeconds)
	raw := r.Ceilings.RawHTTP
	p("deliveries/s    %10.0f   = %.1f%% of raw HTTP ceiling %.0f/s (%.0f before the window, %.0f after; %d concurrent, same receivers, no walhook)",
		r.DeliveriesPerSec, 100*r.Ratios.DeliveriesVsRawHTTP, raw.PerSec, raw.BeforePerSec, raw.AfterPerSec, raw.Concurrency)
	p("events/s        %10.0f   = %.1f%% of producer ceiling %.0f/s (producer alone, no walhook)",
		r.EventsPerSec, 100*r.Ratios.EventsVsProducer, r.Ceilings.ProducerAlonePerSec)
	p("producer        %10.0f/s committed over %.2f s = %.1f%% of its rate alone", r.Producer.EventsPerSec, r.Producer.Seconds, 100*r.Ratios.ProducerVsAlone)
	p("")
	wh := r.Walhook
	l := r.Latency
	p("latency COMMIT→receiver (ms)  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f  (n=%d)", l.P50, l.P90, l.P99, l.Max, l.Mean, l.Samples)
	if n := wh.Metrics["walhook_end_to_end_latency_seconds_count"]; n > 0 {
		p("walhook's own COMMIT→2xx mean  %.1f ms (its metric, n=%.0f)", 1000*wh.Metrics["walhook_end_to_end_latency_seconds_sum"]/n, n)
	}
	if r.Receivers.Failed > 0 {
		l = r.LatencyToOK
		p("latency COMMIT→2xx (ms)       p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f  (n=%d)", l.P50, l.P90, l.P99, l.Max, l.Mean, l.Samples)
	}
	if ab := r.AfterBacklog; ab != nil {
		l = ab.Latency
		p("after the backlog, %d events at %.0f/s (%.0f/s achieved): latency (ms) p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (n=%d, %d missing)",
			ab.Events, ab.Rate, ab.AchievedRate, l.P50, l.P90, l.P99, l.Max, l.Samples, ab.Missing)
		if ab.WALToDecodeBytes >= 0 {
			p("                WAL the walsender had yet to decode when the backlog was delivered: %.1f MB", mb(ab.WALToDecodeBytes))
		}
	}
	p("")
	p("walhook         CPU %.2f s = %.3f s per 1,000 deliveries (%.2f cores); peak RSS %.1f MB (%s), RSS at end %.1f MB",
		wh.CPUSeconds, wh.CPUPer1000, wh.Cores, mb(wh.PeakRSS), wh.PeakScope, mb(wh.RSS))
	if wh.AvgBatchRows > 0 {
		p("                store group commits: %.1f rows per batch, %.2f ms per flush", wh.AvgBatchRows, wh.AvgFlushMs)
	}
	if classes := attemptClasses(wh.Metrics); classes != "" {
		p("                attempts: %s", classes)
	}
	if wh.ExitError != "" {
		p("                exit: %s", wh.ExitError)
	}
	pg := r.Postgres
	p("postgres        CPU %.2f s = %.3f s per 1,000 deliveries; without the producer's backends (%.2f s) %.3f s per 1,000",
		pg.CPUSeconds, pg.CPUPer1000, pg.ProducerCPUSeconds, pg.WalhookCPUPer1000)
	if len(pg.CPUByKind) > 0 && r.Deliveries > 0 {
		var parts []string
		for _, kind := range []string{pgBackends, pgWalsender, pgProducer, pgBackground, pgStateServer} {
			if cpu, ok := pg.CPUByKind[kind]; ok || kind != pgStateServer {
				parts = append(parts, fmt.Sprintf("%s %.1f", kind, 1e6*cpu/float64(r.Deliveries)))
			}
		}
		p("                µs per delivery by process: %s", strings.Join(parts, ", "))
	}
	server := ""
	if s.StateServer {
		server = " in the outbox's server (walhook's records are on the state server)"
	}
	p("                per delivery%s (%d deliveries, warm-up included): %.2f rows inserted, %.2f updated, %.0f WAL bytes",
		server, pg.StatsDeliveries, pg.InsertedPerDelivery, pg.UpdatedPerDelivery, pg.WALBytesPerDelivery)
	for _, schema := range slices.Sorted(maps.Keys(pg.BySchema)) {
		t := pg.BySchema[schema]
		p("                  schema %-8s %.2f ins, %.2f upd, %.2f del per delivery", schema,
			ratio(float64(t.Inserted), float64(pg.StatsDeliveries)), ratio(float64(t.Updated), float64(pg.StatsDeliveries)), ratio(float64(t.Deleted), float64(pg.StatsDeliveries)))
	}
	for _, t := range []struct {
		label  string
		tables map[string]tupleCounts
	}{{"tables", pg.Tables}, {"state server's tables", pg.StateTables}} {
		if len(t.tables) > 0 {
			p("                  %s (ins/upd): %s", t.label, tableList(t.tables))
		}
	}
	p("machine         %d CPUs, %.0f%% busy during the window (%.1f%% stolen by the hypervisor); CPU of the bench process (producer, receivers) %.2f s, of everything else %.2f s",
		r.Machine.CPUs, r.Machine.BusyPercent, r.Machine.StealPercent, r.Machine.BenchCPUSeconds, r.Machine.OtherCPUSeconds)
	lg := wh.Log
	p("walhook log     %s: %d lines (%d errors, %d warnings)", lg.Path, lg.Lines, lg.Errors, lg.Warnings)
	for _, line := range lg.Tail {
		p("  | %s", line)
	}
	if r.TempDir != "" {
		p("kept            %s", r.TempDir)
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// attemptClasses renders walhook_attempts_total by class.
func attemptClasses(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		name, labels, _ := strings.Cut(k, "{")
		if name != "walhook_attempts_total" || v == 0 {
			continue
		}
		_, class, _ := strings.Cut(labels, `class="`)
		class, _, _ = strings.Cut(class, `"`)
		parts = append(parts, fmt.Sprintf("%s=%.0f", class, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// tableList lists tables' inserts and updates.
func tableList(tables map[string]tupleCounts) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		t := tables[name]
		parts = append(parts, fmt.Sprintf("%s +%d/~%d", name, t.Inserted, t.Updated))
	}
	return strings.Join(parts, ", ")
}
