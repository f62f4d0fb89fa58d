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
// open, queue full) are parked by endpoint, ids only, oldest first. The
// dispatcher pulls them back a window at a time (Resume) as its lane for
// the endpoint drains, so a backlog of any size flows at the endpoint's
// pace without being read back twice; a window on its way counts against
// the next, so pulls never overshoot the lane.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// Room is how many parked deliveries an endpoint takes now (0: none).
	Room(endpointID string) int
}

// Options configure a Scheduler.
type Options struct {
	Store      *store.Store
	Router     *route.Router
	Dispatcher Submitter
	// Sink records deliveries that can no longer be attempted (endpoint gone).
	Sink  delivery.Sink
	Tick  time.Duration // wheel resolution; 100ms by default
	Batch int           // ids read back per query; 500 by default
	Rate  int           // due deliveries released per second at most; 5000 by default
	// Window is how many parked deliveries of an endpoint a Resume with
	// n <= 0 releases (the dispatcher's queue limit); 10000 by default.
	Window  int
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// Scheduler owns the wheel.
type Scheduler struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics

	mu      sync.Mutex
	wheel   *wheel.Wheel[string]
	due     []string            // released by the wheel: paced by Rate
	resumed []parkedID          // pulled back by the dispatcher: not paced
	transit map[string]int      // endpoint id → resumed ids not yet submitted
	parked  map[string][]string // endpoint id → delivery ids, oldest first
	nparked atomic.Int64        // sum of len(parked[...]), read without mu
	kick    chan struct{}
	rescan  chan struct{}
}

type parkedID struct{ endpointID, id string }

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
	if opts.Window <= 0 {
		opts.Window = 10000
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
		wheel: wheel.New[string](opts.Tick, opts.Now()), parked: map[string][]string{}, transit: map[string]int{},
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
// the recorder, once its row is written), behind the endpoint's older
// parked deliveries. If the endpoint can take deliveries by now, or is
// gone, a window is released at once: a park must never outlive the reason
// for it, whichever of the two arrives first.
func (s *Scheduler) Park(endpointID, deliveryID string) {
	s.mu.Lock()
	s.parked[endpointID] = append(s.parked[endpointID], deliveryID)
	s.nparked.Add(1)
	room := s.room(endpointID)
	s.mu.Unlock()
	if room != 0 {
		s.Resume(endpointID, room)
	}
}

// room is how many of an endpoint's parked deliveries may be released now:
// 0 while it cannot take them, -1 for an unknown (deleted) endpoint, whose
// deliveries are released at the paced rate, to be failed.
func (s *Scheduler) room(endpointID string) int {
	ep, ok := s.opts.Router.Table().Get(endpointID)
	switch {
	case !ok:
		return -1
	case !ep.Active:
		return 0
	}
	return s.opts.Dispatcher.Room(endpointID)
}

// Resume releases the oldest parked deliveries of an endpoint, up to n
// (n <= 0: Window) minus those of it already released and not yet
// submitted (delivery.Resumer).
func (s *Scheduler) Resume(endpointID string, n int) {
	if n <= 0 {
		n = s.opts.Window
	}
	s.mu.Lock()
	ids := s.parked[endpointID]
	if _, known := s.opts.Router.Table().Get(endpointID); !known && len(ids) > 0 {
		// Deleted: each is failed without a request, at the paced rate
		// (a deleted endpoint may leave a million behind).
		s.due = append(s.due, ids...)
		s.nparked.Add(int64(-len(ids)))
		delete(s.parked, endpointID)
		s.mu.Unlock()
		s.wake()
		return
	}
	n = min(n-s.transit[endpointID], len(ids))
	if n <= 0 {
		s.mu.Unlock()
		return
	}
	for _, id := range ids[:n] {
		s.resumed = append(s.resumed, parkedID{endpointID, id})
	}
	s.transit[endpointID] += n
	s.nparked.Add(int64(-n))
	if n == len(ids) {
		delete(s.parked, endpointID)
	} else {
		clear(ids[:n]) // let the strings go; the slice's tail stays in use
		s.parked[endpointID] = ids[n:]
	}
	s.mu.Unlock()
	s.wake()
}

// EndpointChanged releases a window of an endpoint's parked deliveries if
// it can take them now (resumed, re-enabled or deleted); the dispatcher
// pulls the rest as it goes.
func (s *Scheduler) EndpointChanged(endpointID string) {
	s.mu.Lock()
	room := s.room(endpointID)
	s.mu.Unlock()
	if room != 0 {
		s.Resume(endpointID, room)
	}
}

// Parked is the number of parked deliveries (delivery.Resumer); it takes no
// lock, so the dispatcher may ask at every job.
func (s *Scheduler) Parked() int { return int(s.nparked.Load()) }

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
	return s.wheel.Len() + len(s.due) + len(s.resumed)
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
		more := len(s.due) > 0 || len(s.resumed) > 0
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

// release attempts what was resumed, then one second's worth (Rate) of due
// deliveries at most.
func (s *Scheduler) release(ctx context.Context) {
	s.releaseResumed(ctx)
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
		if !s.load(ctx, ids) {
			return
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

// releaseResumed attempts the deliveries the dispatcher pulled back; they
// are not paced, the lane's room is their limit.
func (s *Scheduler) releaseResumed(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		n := min(len(s.resumed), s.opts.Batch)
		batch := append([]parkedID(nil), s.resumed[:n]...)
		s.resumed = s.resumed[n:]
		if len(s.resumed) == 0 {
			s.resumed = nil
		}
		s.mu.Unlock()
		if n == 0 {
			return
		}
		ids := make([]string, n)
		for i, p := range batch {
			ids[i] = p.id
		}
		ok := s.load(ctx, ids)
		// Submitted (or found finished, or rescheduled): no longer on
		// their way, so the next Resume may release as many again.
		// A window that submitted nothing (found finished, or its
		// endpoint deleted) leaves the lane idle: nobody would pull the
		// rest, so pull it here while the endpoint can take it.
		again := map[string]int{}
		s.mu.Lock()
		for _, p := range batch {
			if s.transit[p.endpointID]--; s.transit[p.endpointID] <= 0 {
				delete(s.transit, p.endpointID)
				if len(s.parked[p.endpointID]) > 0 {
					if room := s.room(p.endpointID); room != 0 {
						again[p.endpointID] = room
					}
				}
			}
		}
		s.mu.Unlock()
		for ep, room := range again {
			s.Resume(ep, room)
		}
		if !ok {
			return
		}
	}
}

// load reads deliveries back and submits those still due; on a store error
// they are scheduled again a little later, and it reports false.
func (s *Scheduler) load(ctx context.Context, ids []string) bool {
	now := s.opts.Now()
	rows, err := s.opts.Store.LoadDue(ctx, ids, now)
	if err != nil {
		s.log.Error("load due deliveries; will retry", "err", err)
		for _, id := range ids {
			s.Schedule(id, now.Add(5*time.Second))
		}
		return false
	}
	table := s.opts.Router.Table()
	for i := range rows {
		s.dispatch(table, &rows[i], now)
	}
	return true
}

func (s *Scheduler) dispatch(table *route.Table, dd *store.DueDelivery, now time.Time) {
	ep, ok := table.Get(dd.EndpointID)
	switch {
	case !ok:
		// Not an attempt: nothing was sent.
		d := dd.Delivery
		d.Status, d.NextRetryAt, d.LastError, d.UpdatedAt = store.StatusFailed, time.Time{}, "endpoint deleted; not attempted", now
		s.opts.Sink.Result(delivery.Result{Delivery: d})
		s.m.Inc(s.m.Deliveries, "failed")
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
