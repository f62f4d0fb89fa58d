package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunTiny runs the whole harness in a tiny configuration: a real
// Postgres, walhook built and run as a process, two endpoints, some failed
// requests to exercise retries.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and builds walhook")
	}
	cfg := DefaultConfig()
	cfg.Events = 300
	cfg.Endpoints = 2
	cfg.Conns = 2
	cfg.RowsPerTxn = 5
	cfg.Warmup = 300 * time.Millisecond
	cfg.CeilingDuration = 400 * time.Millisecond
	// Few enough failures that walhook's circuit breaker (5 in a row) stays
	// closed; enough that some requests are retried.
	cfg.FailureRatio = 0.03
	cfg.RetrySchedule = "200ms"
	cfg.DrainTimeout = 30 * time.Second
	cfg.StallTimeout = 15 * time.Second
	cfg.PGSettings = map[string]string{"fsync": "off"} // speed; durability is not under test
	var progress bytes.Buffer
	cfg.Progress = &syncWriter{t: t, buf: &progress}

	rep, _ := runTiny(t, cfg)

	if !rep.Complete || rep.Missing != nil {
		t.Fatalf("incomplete: %+v", rep.Missing)
	}
	if rep.Events != 300 || rep.ExpectedDeliveries != 600 || rep.Deliveries != 600 {
		t.Errorf("events %d, expected %d, deliveries %d; want 300, 600, 600", rep.Events, rep.ExpectedDeliveries, rep.Deliveries)
	}
	if rep.WarmupEvents <= 0 {
		t.Errorf("warm-up events = %d", rep.WarmupEvents)
	}
	rc := rep.Receivers
	if rc.DuplicateEvents != 0 || rc.BadSignatures != 0 || rc.Unparsable != 0 {
		t.Errorf("receivers saw %d duplicate events, %d bad signatures, %d unparsable bodies", rc.DuplicateEvents, rc.BadSignatures, rc.Unparsable)
	}
	if rep.Requests < rep.Deliveries {
		t.Errorf("requests %d < deliveries %d", rep.Requests, rep.Deliveries)
	}
	for name, l := range map[string]Latency{"latency": rep.Latency, "latency to 2xx": rep.LatencyToOK} {
		if l.Samples != 600 || l.P50 < 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || l.Max <= 0 {
			t.Errorf("%s not sane: %+v", name, l)
		}
	}
	if rep.LatencyToOK.Max < rep.Latency.Max {
		t.Errorf("latency to 2xx max %.1f < first request max %.1f", rep.LatencyToOK.Max, rep.Latency.Max)
	}
	positive := map[string]float64{
		"window seconds":           rep.WindowSeconds,
		"deliveries/s":             rep.DeliveriesPerSec,
		"events/s":                 rep.EventsPerSec,
		"producer events/s":        rep.Producer.EventsPerSec,
		"raw HTTP/s":               rep.Ceilings.RawHTTP.PerSec,
		"raw HTTP/s before":        rep.Ceilings.RawHTTP.BeforePerSec,
		"raw HTTP/s after":         rep.Ceilings.RawHTTP.AfterPerSec,
		"producer alone/s":         rep.Ceilings.ProducerAlonePerSec,
		"deliveries vs raw":        rep.Ratios.DeliveriesVsRawHTTP,
		"events vs producer":       rep.Ratios.EventsVsProducer,
		"walhook CPU":              rep.Walhook.CPUSeconds,
		"walhook CPU per 1000":     rep.Walhook.CPUPer1000,
		"walhook peak RSS":         float64(rep.Walhook.PeakRSS),
		"postgres CPU":             rep.Postgres.CPUSeconds,
		"rows inserted/delivery":   rep.Postgres.InsertedPerDelivery,
		"WAL bytes per delivery":   rep.Postgres.WALBytesPerDelivery,
		"machine busy percent":     rep.Machine.BusyPercent,
		"walhook 2xx attempts":     rep.Walhook.Metrics[`walhook_attempts_total{class="2xx"}`],
		"outbox inserts in public": float64(rep.Postgres.BySchema["public"].Inserted),
		"walhook schema inserts":   float64(rep.Postgres.BySchema["walhook"].Inserted),
	}
	for name, v := range positive {
		if !(v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if rep.DeliveriesPerSec > rep.Ceilings.RawHTTP.PerSec*5 {
		t.Errorf("deliveries/s %.0f implausibly above the raw HTTP ceiling %.0f", rep.DeliveriesPerSec, rep.Ceilings.RawHTTP.PerSec)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}
	if rep.Walhook.ExitError != "" {
		t.Errorf("walhook exit: %s", rep.Walhook.ExitError)
	}

	// Everything is cleaned up: the temporary directory is gone.
	m := regexp.MustCompile(`starting PostgreSQL in (\S+)`).FindStringSubmatch(progress.String())
	if m == nil {
		t.Fatal("no temporary directory in the progress lines")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s not removed (%v)", m[1], err)
	}
}

// TestRunTinyCatchup runs the catch-up scenario small: walhook is stopped
// while the events are committed, delivers them after its start, and the
// events committed after the backlog are measured on their own. Its
// receivers run net/http's server, TestRunTiny's the lean one, and walhook
// records in a state server of its own.
func TestRunTinyCatchup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and builds walhook")
	}
	cfg := DefaultConfig()
	cfg.Catchup = true
	cfg.Server = ServerNetHTTP
	cfg.StateServer = true
	cfg.Events = 300
	cfg.Conns = 2
	cfg.RowsPerTxn = 10
	cfg.Warmup = 0
	cfg.CeilingDuration = 300 * time.Millisecond
	cfg.DrainTimeout = 30 * time.Second
	cfg.StallTimeout = 15 * time.Second
	cfg.PGSettings = map[string]string{"fsync": "off"}
	cfg.Progress = logWriter{t}

	rep, text := runTiny(t, cfg)
	if !rep.Complete || rep.Deliveries != 300 {
		t.Fatalf("complete %v with %d deliveries (missing %+v); want all 300", rep.Complete, rep.Deliveries, rep.Missing)
	}
	ab := rep.AfterBacklog
	if ab == nil {
		t.Fatal("no measurement after the backlog")
	}
	if l := ab.Latency; ab.Events != tailEvents || ab.Missing != 0 || l.Samples != tailEvents || l.P50 > l.P99 || l.P99 > l.Max || l.Max <= 0 {
		t.Errorf("after the backlog: %+v", ab)
	}
	if !strings.Contains(text.String(), "after the backlog, 2000 events at 1000/s") {
		t.Error("the text report does not show the latency after the backlog")
	}
	// Every delivery, the 2,000 after the backlog included, is recorded on
	// the state server and none beside the outbox.
	if got := rep.Postgres.StateTables["walhook.deliveries"].Inserted; got != 300+tailEvents || rep.Postgres.BySchema["walhook"].Inserted != 0 {
		t.Errorf("deliveries recorded on the state server %d, walhook rows in the outbox's server %+v: want %d and none",
			got, rep.Postgres.BySchema["walhook"], 300+tailEvents)
	}
}

// runTiny runs the harness in a test and logs its text report.
func runTiny(t *testing.T, cfg Config) (*Report, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	return rep, &text
}

// syncWriter keeps progress lines and logs them; Run writes from one
// goroutine at a time, the test reads after Run.
type syncWriter struct {
	t   *testing.T
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return logWriter{w.t}.Write(p)
}

func TestParseSeq(t *testing.T) {
	for body, want := range map[string]int64{
		`{"type":"bench.event","timestamp":"2026-01-01T00:00:00.000000Z","data":{"seq": 42, "padding": "xx"}}`: 42,
		`{"data":{"seq":7}}`:         7,
		`{"data":{"seq": 0, "x":1}}`: 0,
	} {
		if got, ok := parseSeq([]byte(body)); !ok || got != want {
			t.Errorf("parseSeq(%s) = %d, %v; want %d", body, got, ok, want)
		}
	}
	for _, body := range []string{`{}`, `{"seq": "x"}`, `{"seq": }`} {
		if _, ok := parseSeq([]byte(body)); ok {
			t.Errorf("parseSeq(%s) ok, want not", body)
		}
	}
}

func TestLatencyPercentiles(t *testing.T) {
	ns := make([]int64, 100)
	for i := range ns {
		ns[i] = int64(100-i) * 1e6 // 100ms … 1ms, unsorted
	}
	l := latency(ns)
	if l.Samples != 100 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Errorf("latency = %+v", l)
	}
	if l := latency(nil); l != (Latency{}) {
		t.Errorf("latency(nil) = %+v", l)
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := []byte("1234 (wal hook (x)) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 12 0 100 0 0")
	pt, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if pt.ppid != 1 || pt.self != 3 || pt.children != 0.1 {
		t.Errorf("parseProcStat = %+v; want ppid 1, self 3s, children 0.1s", pt)
	}
	self, err := readProcTimes(os.Getpid())
	if err != nil || self.ppid != os.Getppid() {
		t.Errorf("readProcTimes(self) = %+v, %v", self, err)
	}
}

func TestMetricDelta(t *testing.T) {
	before := metricSample{`walhook_attempts_total{class="2xx"}`: 10, "walhook_inflight_requests": 3}
	after := metricSample{`walhook_attempts_total{class="2xx"}`: 25, `walhook_attempts_total{class="5xx"}`: 2, "walhook_inflight_requests": 1}
	d := after.delta(before)
	if d[`walhook_attempts_total{class="2xx"}`] != 15 || d[`walhook_attempts_total{class="5xx"}`] != 2 || d["walhook_inflight_requests"] != 1 {
		t.Errorf("delta = %v", d)
	}
	if got := d.sum("walhook_attempts_total", ""); got != 17 {
		t.Errorf("sum = %v, want 17", got)
	}
}

func TestRawCeilingsCombineByRequests(t *testing.T) {
	before := rawResult{Concurrency: 8, Requests: 20000, Errors: 1, Seconds: 1, PerSec: 20000}
	after := rawResult{Concurrency: 8, Requests: 60000, Errors: 2, Seconds: 2, PerSec: 30000}
	got := before.with(after)
	want := rawResult{Concurrency: 8, Requests: 80000, Errors: 3, Seconds: 3, PerSec: 80000.0 / 3, BeforePerSec: 20000, AfterPerSec: 30000}
	if got != want {
		t.Fatalf("with = %+v, want %+v", got, want)
	}
}

func TestPostgresProcessesByKind(t *testing.T) {
	for _, tt := range []struct {
		title    string
		producer bool
		want     string
	}{
		{"postgres: walsender postgres [local] START_REPLICATION\x00", false, pgWalsender},
		{"postgres: postgres bench [local] idle\x00", true, pgProducer},
		{"postgres: postgres bench [local] COPY\x00", false, pgBackends},
		{"postgres: checkpointer \x00", false, pgBackground},
		{"postgres: background writer \x00", false, pgBackground},
		{"postgres: walwriter \x00", false, pgBackground},
		{"postgres: autovacuum worker bench\x00", false, pgBackground},
	} {
		if got := pgKind(tt.title, tt.producer); got != tt.want {
			t.Errorf("pgKind(%q, %v) = %q, want %q", tt.title, tt.producer, got, tt.want)
		}
	}

	before := map[int]pgProcess{
		10: {pgWalsender, 1.0},
		11: {pgBackends, 2.0},
		12: {pgBackends, 5.0}, // exits: its CPU is nobody's in the split
		13: {pgBackground, 9.0},
	}
	after := map[int]pgProcess{
		10: {pgWalsender, 1.5},
		11: {pgBackends, 2.25},
		14: {pgBackends, 0.5},   // new: all of its CPU counts
		13: {pgWalsender, 0.75}, // a pid used again by another process
	}
	got := pgCPUByKind(before, after)
	want := map[string]float64{pgWalsender: 0.5 + 0.75, pgBackends: 0.25 + 0.5}
	if len(got) != len(want) || got[pgWalsender] != want[pgWalsender] || got[pgBackends] != want[pgBackends] {
		t.Errorf("pgCPUByKind = %v, want %v", got, want)
	}
}
