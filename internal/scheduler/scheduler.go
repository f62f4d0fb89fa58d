// Package scheduler releases deliveries for their next attempt when they are
// due. Its in-memory index is a timing wheel of delivery ids; the state of
// record (status, attempts, next_retry_at) stays in the store, and a due id
// is read back from it in batches, with its payload, right before the
// attempt. A stale index entry (a delivery finished or rescheduled
// meanwhile) is therefore harmless: the store no longer reports it due.
//
// At start every pending or retrying delivery is loaded into the wheel;
// those already overdue are released at a bounded rate, not all at once.
//
// Deliveries whose endpoint cannot take them now (paused, disabled, circuit
// open, queue full) are parked by endpoint, ids only, and released when the
// dispatcher or an endpoint change says the endpoint can take them again.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/wheel"
)

// Submitter takes attempts (the dispatcher).
type Submitter interface {
	Submit(*delivery.Job)
	// Accepting reports whether an endpoint takes deliveries now.
	Accepting(endpointID string) bool
}

// Options configure a Scheduler.
type Options struct {
	Store      *store.Store
	Router     *route.Router
	Dispatcher Submitter
	// Sink records deliveries that can no longer be attempted (endpoint gone).
	Sink    delivery.Sink
	Tick    time.Duration // wheel resolution; 100ms by default
	Batch   int           // ids read back per query; 500 by default
	Rate    int           // deliveries released per second at most; 5000 by default
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// Scheduler owns the wheel.
type Scheduler struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics

	mu     sync.Mutex
	wheel  *wheel.Wheel[string]
	due    []string
	parked map[string][]string // endpoint id → delivery ids
	kick   chan struct{}
	rescan chan struct{}
}

// New makes a scheduler; Load fills it, Run releases what is due.
func New(opts Options) *Scheduler {
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Rate <= 0 {
		opts.Rate = 5000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	return &Scheduler{opts: opts, log: opts.Logger, m: opts.Metrics,
		wheel: wheel.New[string](opts.Tick, opts.Now()), parked: map[string][]string{},
		kick: make(chan struct{}, 1), rescan: make(chan struct{}, 1)}
}

// Schedule indexes a delivery due at at; safe from any goroutine.
func (s *Scheduler) Schedule(id string, at time.Time) {
	s.mu.Lock()
	s.wheel.Schedule(id, at)
	n := s.wheel.Len()
	s.mu.Unlock()
	s.m.RetryScheduled.Set(float64(n))
	s.wake()
}

func (s *Scheduler) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Park holds a delivery until its endpoint can take it (delivery.Sink via
// the recorder, once its row is written). If the endpoint can take it by
// now, or is gone, it is released at once: a park must never outlive the
// reason for it, whichever of the two arrives first.
func (s *Scheduler) Park(endpointID, deliveryID string) {
	s.mu.Lock()
	if s.canTake(endpointID) {
		s.due = append(s.due, deliveryID)
	} else {
		s.parked[endpointID] = append(s.parked[endpointID], deliveryID)
	}
	s.mu.Unlock()
	s.wake()
}

// canTake reports whether an endpoint's deliveries may be released; an
// unknown (deleted) endpoint's are, to be failed.
func (s *Scheduler) canTake(endpointID string) bool {
	ep, ok := s.opts.Router.Table().Get(endpointID)
	return !ok || (ep.Active && s.opts.Dispatcher.Accepting(endpointID))
}

// Resume releases up to n (n <= 0: all) parked deliveries of an endpoint
// (delivery.Resumer).
func (s *Scheduler) Resume(endpointID string, n int) {
	s.mu.Lock()
	ids := s.parked[endpointID]
	if n <= 0 || n > len(ids) {
		n = len(ids)
	}
	s.due = append(s.due, ids[:n]...)
	if n == len(ids) {
		delete(s.parked, endpointID)
	} else {
		s.parked[endpointID] = ids[n:]
	}
	s.mu.Unlock()
	if n > 0 {
		s.wake()
	}
}

// EndpointChanged releases an endpoint's parked deliveries if it can take
// them now (resumed, re-enabled or deleted).
func (s *Scheduler) EndpointChanged(endpointID string) {
	s.mu.Lock()
	ok := s.canTake(endpointID)
	s.mu.Unlock()
	if ok {
		s.Resume(endpointID, 0)
	}
}

// Parked is the number of parked deliveries.
func (s *Scheduler) Parked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ids := range s.parked {
		n += len(ids)
	}
	return n
}

// Rescan asks for the store to be searched for due deliveries: some were
// re-queued by hand, by another process.
func (s *Scheduler) Rescan() {
	select {
	case s.rescan <- struct{}{}:
	default:
	}
}

// Len is the number of deliveries waiting in the wheel or due.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wheel.Len() + len(s.due)
}

// Load indexes every unfinished delivery of the store. Call it before the
// stream starts, so that no delivery under way is loaded as interrupted.
func (s *Scheduler) Load(ctx context.Context) (int, error) {
	n := 0
	err := s.opts.Store.ScanUnfinished(ctx, func(sd store.ScheduledDelivery) error {
		s.mu.Lock()
		s.wheel.Schedule(sd.ID, sd.Due)
		s.mu.Unlock()
		n++
		return nil
	})
	s.m.RetryScheduled.Set(float64(s.Len()))
	return n, err
}

// Run releases due deliveries until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.kick:
		case <-s.rescan:
			now := s.opts.Now()
			// Due by the database's clock (re-queued with its now()):
			// each is released when walhook's clock says it is due.
			err := s.opts.Store.ScanDue(ctx, "", now, func(sd store.ScheduledDelivery) error {
				s.Schedule(sd.ID, sd.Due)
				return nil
			})
			if err != nil && ctx.Err() == nil {
				s.log.Error("scan for re-queued deliveries", "err", err)
			}
		}
		now := s.opts.Now()
		s.mu.Lock()
		s.wheel.Advance(now, func(id string, _ time.Time) { s.due = append(s.due, id) })
		next, ok := s.wheel.NextDue()
		s.mu.Unlock()
		s.release(ctx)
		s.mu.Lock()
		s.m.RetryScheduled.Set(float64(s.wheel.Len()))
		s.m.RetryDue.Set(float64(len(s.due)))
		more := len(s.due) > 0
		s.mu.Unlock()

		wait := time.Hour
		if ok {
			wait = max(next.Sub(s.opts.Now()), 0)
		}
		if more {
			wait = 0
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// release attempts one second's worth (Rate) of due deliveries at most.
func (s *Scheduler) release(ctx context.Context) {
	budget := s.opts.Rate
	started := time.Now()
	for budget > 0 && ctx.Err() == nil {
		s.mu.Lock()
		n := min(len(s.due), s.opts.Batch, budget)
		ids := append([]string(nil), s.due[:n]...)
		s.due = s.due[n:]
		if len(s.due) == 0 {
			s.due = nil
		}
		s.mu.Unlock()
		if n == 0 {
			return
		}
		budget -= n
		now := s.opts.Now()
		rows, err := s.opts.Store.LoadDue(ctx, ids, now)
		if err != nil {
			s.log.Error("load due deliveries; will retry", "err", err)
			for _, id := range ids {
				s.Schedule(id, now.Add(5*time.Second))
			}
			return
		}
		table := s.opts.Router.Table()
		for i := range rows {
			s.dispatch(table, &rows[i], now)
		}
	}
	// Spread a large overdue backlog over time instead of releasing it at once.
	if rest := time.Second - time.Since(started); rest > 0 && budget <= 0 {
		select {
		case <-time.After(rest):
		case <-ctx.Done():
		}
	}
}

func (s *Scheduler) dispatch(table *route.Table, dd *store.DueDelivery, now time.Time) {
	ep, ok := table.Get(dd.EndpointID)
	switch {
	case !ok:
		// Not an attempt: nothing was sent.
		d := dd.Delivery
		d.Status, d.NextRetryAt, d.LastError, d.UpdatedAt = store.StatusFailed, time.Time{}, "endpoint deleted; not attempted", now
		s.opts.Sink.Result(delivery.Result{Delivery: d})
		s.m.Deliveries.WithLabelValues("failed").Inc()
	case !ep.Active:
		// Paused or disabled: wait, without spending an attempt, until
		// it is resumed or re-enabled.
		s.Park(ep.ID, dd.ID)
	default:
		j := &delivery.Job{
			DeliveryID: dd.ID, Endpoint: ep, EventID: dd.EventID, EventType: dd.EventType,
			EventTime: dd.EventCreatedAt, Payload: dd.Payload, Attempt: dd.Attempts + 1, MaxAttempts: dd.MaxAttempts,
		}
		if dd.Attempts == 0 {
			// A first attempt that waited (parked, or interrupted by a
			// restart) still counts in the end-to-end latency, from the
			// event's time, so the histogram does not hide slow deliveries.
			j.CommitTime = dd.EventCreatedAt
		}
		s.opts.Dispatcher.Submit(j)
	}
}
