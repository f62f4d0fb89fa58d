package metrics_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/walhook/walhook/internal/metrics"
)

// fakeSlot serves readings and a clock the test moves.
type fakeSlot struct {
	mu  sync.Mutex
	st  metrics.SlotStats
	err error
	now time.Time
}

func (f *fakeSlot) read(ctx context.Context) (metrics.SlotStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

func (f *fakeSlot) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeSlot) set(fn func(f *fakeSlot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" {
					name += "{" + l.GetValue() + "}"
				} else if l.GetName() != "slot" || l.GetValue() != "walhook" {
					t.Errorf("%s: unexpected label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
			out[name] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestReplicationCollectorExportsSlotState(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &fakeSlot{now: t0, st: metrics.SlotStats{Active: true, WALStatus: "reserved", ConfirmedFlushLSN: 1000, LagBytes: 0, RetainedWALBytes: 4096}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewReplicationCollector("walhook", f.read, metrics.ReplicationOptions{Now: f.clock}))

	got := gather(t, reg)
	want := map[string]float64{
		"walhook_replication_lag_bytes":                   0,
		"walhook_replication_lag_seconds":                 0,
		"walhook_replication_slot_active":                 1,
		"walhook_replication_slot_retained_wal_bytes":     4096,
		"walhook_replication_slot_scrape_error":           0,
		"walhook_replication_slot_wal_status{reserved}":   1,
		"walhook_replication_slot_wal_status{extended}":   0,
		"walhook_replication_slot_wal_status{unreserved}": 0,
		"walhook_replication_slot_wal_status{lost}":       0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	// Behind, and the confirmed position does not move: lag seconds grow
	// from the last reading at which it moved.
	f.set(func(f *fakeSlot) { f.st.LagBytes = 5000; f.now = t0.Add(10 * time.Second) })
	if got := gather(t, reg); got["walhook_replication_lag_seconds"] != 10 || got["walhook_replication_lag_bytes"] != 5000 {
		t.Fatalf("stalled 10s: lag seconds %v, bytes %v", got["walhook_replication_lag_seconds"], got["walhook_replication_lag_bytes"])
	}
	f.set(func(f *fakeSlot) { f.now = t0.Add(25 * time.Second) })
	if got := gather(t, reg)["walhook_replication_lag_seconds"]; got != 25 {
		t.Fatalf("stalled 25s: lag seconds %v", got)
	}
	// Progress resets the clock even while still behind.
	f.set(func(f *fakeSlot) { f.st.ConfirmedFlushLSN = 3000; f.now = t0.Add(30 * time.Second) })
	if got := gather(t, reg)["walhook_replication_lag_seconds"]; got != 0 {
		t.Fatalf("just advanced: lag seconds %v", got)
	}
	f.set(func(f *fakeSlot) { f.now = t0.Add(33 * time.Second) })
	if got := gather(t, reg)["walhook_replication_lag_seconds"]; got != 3 {
		t.Fatalf("3s after advancing: lag seconds %v", got)
	}
	// Caught up: 0 however long ago the position moved.
	f.set(func(f *fakeSlot) { f.st.LagBytes = 0; f.now = t0.Add(time.Hour) })
	if got := gather(t, reg)["walhook_replication_lag_seconds"]; got != 0 {
		t.Fatalf("caught up: lag seconds %v", got)
	}

	// Slot lost and inactive.
	f.set(func(f *fakeSlot) { f.st.Active = false; f.st.WALStatus = "lost" })
	got = gather(t, reg)
	if got["walhook_replication_slot_active"] != 0 || got["walhook_replication_slot_wal_status{lost}"] != 1 || got["walhook_replication_slot_wal_status{reserved}"] != 0 {
		t.Fatalf("lost slot: %v", got)
	}
}

func TestReplicationCollectorNeverFailsTheScrape(t *testing.T) {
	f := &fakeSlot{now: time.Now(), err: errors.New("connection refused")}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewReplicationCollector("walhook", f.read, metrics.ReplicationOptions{}))
	got := gather(t, reg)
	if len(got) != 1 || got["walhook_replication_slot_scrape_error"] != 1 {
		t.Fatalf("failed reading exported %v, want only scrape_error 1", got)
	}

	// A reading that ignores its context is cut off by the timeout.
	block := make(chan struct{})
	defer close(block)
	hang := func(ctx context.Context) (metrics.SlotStats, error) { <-block; return metrics.SlotStats{}, nil }
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewReplicationCollector("walhook", hang, metrics.ReplicationOptions{Timeout: 50 * time.Millisecond}))
	start := time.Now()
	got = gather(t, reg)
	if time.Since(start) > 5*time.Second || got["walhook_replication_slot_scrape_error"] != 1 {
		t.Fatalf("hanging reading: %v after %s", got, time.Since(start))
	}

	// Every family has a help text and the slot label.
	f.set(func(f *fakeSlot) {
		f.err = nil
		f.st = metrics.SlotStats{Active: true, WALStatus: "extended", LagBytes: 12}
	})
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewReplicationCollector("walhook", f.read, metrics.ReplicationOptions{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 6 {
		t.Fatalf("families = %d, want 6", len(mfs))
	}
	for _, mf := range mfs {
		if mf.GetHelp() == "" || mf.GetType().String() != "GAUGE" {
			t.Errorf("%s: help %q, type %s", mf.GetName(), mf.GetHelp(), mf.GetType())
		}
	}
}
