package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SlotStats is one reading of the replication slot, as the collector needs
// it (internal/store's SlotStats has the same fields and more).
type SlotStats struct {
	Active            bool
	WALStatus         string
	ConfirmedFlushLSN uint64
	LagBytes          int64
	RetainedWALBytes  int64
}

// WAL statuses of pg_replication_slots, always exported so that a change of
// status is a change of value, not a new series.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// ReplicationOptions tune a ReplicationCollector.
type ReplicationOptions struct {
	// Timeout bounds one reading at scrape time; default 2s.
	Timeout time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// ReplicationCollector reads the replication slot at scrape time and exports
// its lag and retention. A failed reading never fails the scrape: it sets
// walhook_replication_slot_scrape_error to 1 and leaves the slot's series out
// of that scrape.
//
// walhook_replication_lag_seconds is 0 when the slot has confirmed everything
// (lag bytes 0), and otherwise the time since the slot's confirmed position
// last moved, as seen by the collector's readings. The stream does not expose
// the commit time of the oldest unconfirmed transaction, so this measures how
// long walhook has been making no progress while behind, not how old the
// oldest pending WAL is: a slot that is far behind but catching up reads low,
// a stalled one grows without bound. Its resolution is the scrape interval,
// and it starts from 0 at the first reading after walhook starts.
type ReplicationCollector struct {
	read    func(context.Context) (SlotStats, error)
	timeout time.Duration
	now     func() time.Time

	lagBytes, lagSeconds, active, retained, walStatus, scrapeError *prometheus.Desc

	mu           sync.Mutex // serialises readings (concurrent scrapes)
	seen         bool
	lastLSN      uint64
	lastAdvanced time.Time
}

// NewReplicationCollector makes a collector for slot (exported as the slot
// label) whose values come from read, called once per scrape.
func NewReplicationCollector(slot string, read func(context.Context) (SlotStats, error), opts ReplicationOptions) *ReplicationCollector {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	labels := prometheus.Labels{"slot": slot}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	return &ReplicationCollector{
		read: read, timeout: opts.Timeout, now: opts.Now,
		lagBytes:    desc("walhook_replication_lag_bytes", "WAL bytes written since the slot's confirmed position (pg_current_wal_lsn() - confirmed_flush_lsn)."),
		lagSeconds:  desc("walhook_replication_lag_seconds", "0 when the slot has confirmed everything; otherwise seconds since its confirmed position last advanced."),
		active:      desc("walhook_replication_slot_active", "1 while a consumer is connected to the replication slot."),
		retained:    desc("walhook_replication_slot_retained_wal_bytes", "WAL bytes the slot keeps from being recycled (pg_current_wal_lsn() - restart_lsn)."),
		walStatus:   desc("walhook_replication_slot_wal_status", "1 for the slot's current wal_status (lost: its WAL is gone, events were missed).", "status"),
		scrapeError: desc("walhook_replication_slot_scrape_error", "1 when reading the replication slot failed during this scrape (missing slot, database unreachable, timeout)."),
	}
}

// Describe implements prometheus.Collector.
func (c *ReplicationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lagBytes, c.lagSeconds, c.active, c.retained, c.walStatus, c.scrapeError} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ReplicationCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.readWithin(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.scrapeError, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeError, prometheus.GaugeValue, 0)

	now := c.now()
	if !c.seen || st.ConfirmedFlushLSN != c.lastLSN {
		c.seen, c.lastLSN, c.lastAdvanced = true, st.ConfirmedFlushLSN, now
	}
	lagSeconds := 0.0
	if st.LagBytes > 0 {
		lagSeconds = max(now.Sub(c.lastAdvanced).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.lagBytes, prometheus.GaugeValue, float64(max(st.LagBytes, 0)))
	ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, lagSeconds)
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, boolValue(st.Active))
	ch <- prometheus.MustNewConstMetric(c.retained, prometheus.GaugeValue, float64(max(st.RetainedWALBytes, 0)))
	known := false
	for _, s := range walStatuses {
		known = known || s == st.WALStatus
		ch <- prometheus.MustNewConstMetric(c.walStatus, prometheus.GaugeValue, boolValue(s == st.WALStatus), s)
	}
	if !known && st.WALStatus != "" {
		ch <- prometheus.MustNewConstMetric(c.walStatus, prometheus.GaugeValue, 1, st.WALStatus)
	}
}

// readWithin returns when read does or when ctx ends, whichever is first,
// so that a read that ignores its context cannot hang the scrape.
func (c *ReplicationCollector) readWithin(ctx context.Context) (SlotStats, error) {
	type result struct {
		st  SlotStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := c.read(ctx)
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		return r.st, r.err
	case <-ctx.Done():
		return SlotStats{}, ctx.Err()
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
