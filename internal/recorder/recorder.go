// Package recorder makes walhook's work durable: it gathers events, new
// deliveries, attempt results and dead letters from many goroutines and
// writes them to the store in group commits, one transaction per batch.
//
// Invariants:
//   - Durable() only moves past a transaction's end LSN once the batch
//     holding every row that transaction produced has committed. The stream
//     confirms nothing beyond Durable(), so a crash loses nothing that
//     Postgres will not stream again.
//   - A delivery's row is inserted before any update of it: a result that
//     arrives while its delivery is still unwritten is folded into the
//     insert, and one that arrives while that insert is being written waits
//     for the next batch. To make folding the common case, each new
//     delivery is held back from the batches for up to Hold, waiting for
//     its first result (the first attempt of a healthy endpoint takes
//     milliseconds): one row per delivery instead of an insert and an
//     update. Only the confirmed position lags, by Hold at most: a
//     transaction counts as recorded once every one of its deliveries has
//     left the hold and its batch has committed, and transactions count in
//     commit order. A batch is written when it confirms more of the stream,
//     holds a retry, park or health change, or is big; so at a low rate an
//     event, its delivery and its attempt are one commit.
//   - A retry or a parked delivery is handed to the scheduler only after
//     the batch that holds its row is committed, so the scheduler always
//     finds it when it reads it back.
//   - A failed write keeps its batch and is retried with backoff; meanwhile
//     Add refuses new transactions (the stream then disconnects instead of
//     holding Postgres' walsender), and results keep accumulating. A batch
//     that fails on a duplicate key is written again skipping existing
//     rows: a duplicate must never stall recording.
package recorder

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/store"
)

// ErrUnavailable is returned by Add while the store cannot be written.
var ErrUnavailable = errors.New("recorder: store unavailable")

// Scheduler receives retries and parked deliveries once they are durable.
type Scheduler interface {
	Schedule(id string, at time.Time)
	Park(endpointID, deliveryID string)
}

// Txn is what one source transaction produced.
type Txn struct {
	EndLSN      uint64
	Events      []store.Event
	Deliveries  []store.Delivery
	DeadLetters []store.DeadLetter
	EventTypes  []string
}

// Options configure a Recorder.
type Options struct {
	Store     *store.Store
	Slot      string
	Scheduler Scheduler
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	// MaxPending bounds rows waiting to be written (20,000 by default); Add
	// blocks beyond it, so a store slower than the stream keeps the rest
	// in the WAL rather than in memory. Payloads count too, a row per
	// payloadRowBytes, so it also bounds their memory. Half of it bounds
	// held deliveries.
	MaxPending int
	// FinalFlush bounds the last write after Run's context ends.
	FinalFlush time.Duration
	// Linger is the least time between the starts of two commits, unless
	// a batch is big; 0 means 10ms, negative none.
	Linger time.Duration
	// Hold is how long a new delivery may wait for its first result before
	// its row is written without it; 0 means 1s, negative writes at once.
	// It must cover the time a delivery waits in its endpoint's queue. A
	// longer hold adds no duplicates after a crash (a result releases its
	// delivery at once); it only delays the confirmed position.
	Hold time.Duration
}

// Recorder batches writes.
type Recorder struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics

	mu      sync.Mutex
	cond    *sync.Cond
	next    *pendingBatch
	held    map[string]*held
	order   []*held    // held deliveries in the order they were added (and expire)
	txns    []*txnMark // transactions not yet entirely in a batch, in commit order
	healthy bool
	kick    chan struct{}
	recov   chan struct{} // closed when the store is writable again

	durable   atomic.Uint64
	lastFlush time.Time // start of the last commit; under mu
}

type pendingBatch struct {
	b       store.Batch
	parks   [][2]string    // endpoint id, delivery id
	newIdx  map[string]int // delivery id → index in b.Deliveries
	updIdx  map[string]int // delivery id → index in b.Updates
	maxEnd  uint64         // end of the last transaction entirely in this batch or earlier ones
	written int            // rows, for back-pressure
	retries bool           // a row is retrying: the scheduler waits for its commit
}

// held is a new delivery waiting, outside any batch, for its first result.
type held struct {
	row   store.Delivery
	txn   *txnMark
	until time.Time
}

// txnMark counts a transaction's deliveries still held.
type txnMark struct {
	end  uint64
	held int
}

// newPending makes an empty batch sized like the one before it (nil: none),
// so that at a steady rate a batch's slices and maps do not grow step by
// step from nothing each time. Sizes are capped: one huge transaction must
// not make the next batch reserve as much while it is still being written.
func newPending(prev *pendingBatch) *pendingBatch {
	if prev == nil {
		return &pendingBatch{newIdx: map[string]int{}, updIdx: map[string]int{}}
	}
	const most = 4096
	return &pendingBatch{
		b: store.Batch{
			Events:     make([]store.Event, 0, min(len(prev.b.Events), most)),
			Deliveries: make([]store.Delivery, 0, min(len(prev.b.Deliveries), most)),
			Updates:    make([]store.Delivery, 0, min(len(prev.b.Updates), most)),
			Attempts:   make([]store.Attempt, 0, min(len(prev.b.Attempts), most)),
		},
		newIdx: make(map[string]int, min(len(prev.newIdx), most)),
		updIdx: make(map[string]int, min(len(prev.updIdx), most)),
	}
}

// New makes a recorder; Run writes.
func New(opts Options) *Recorder {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 20_000
	}
	if opts.FinalFlush <= 0 {
		opts.FinalFlush = 10 * time.Second
	}
	if opts.Linger == 0 {
		opts.Linger = 10 * time.Millisecond
	}
	if opts.Hold == 0 {
		opts.Hold = time.Second
	}
	r := &Recorder{opts: opts, log: opts.Logger, m: opts.Metrics, next: newPending(nil), held: map[string]*held{}, healthy: true,
		kick: make(chan struct{}, 1), recov: make(chan struct{})}
	close(r.recov)
	r.cond = sync.NewCond(&r.mu)
	return r
}

// SetDurable sets the starting position (the stream cursor at start).
func (r *Recorder) SetDurable(lsn uint64) { r.durable.Store(lsn) }

// Durable is the end LSN up to which every transaction's rows are written.
func (r *Recorder) Durable() uint64 { return r.durable.Load() }

// Ready blocks until the store is writable; with a context already done it
// answers at once.
func (r *Recorder) Ready(ctx context.Context) error {
	r.mu.Lock()
	ch := r.recov
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	default:
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add queues a transaction's rows. It blocks while too much is pending and
// fails while the store is unavailable.
func (r *Recorder) Add(ctx context.Context, t *Txn) error {
	// cond.Wait cannot watch ctx: its end wakes the waiters instead.
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.healthy && r.next.written >= r.opts.MaxPending && ctx.Err() == nil {
		r.cond.Wait()
	}
	if !r.healthy {
		return ErrUnavailable
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := r.next
	p.b.Events = append(p.b.Events, t.Events...)
	mark := &txnMark{end: t.EndLSN}
	r.txns = append(r.txns, mark)
	until := time.Now().Add(r.opts.Hold)
	var slab []held // the transaction's held rows, in one allocation
	for _, d := range t.Deliveries {
		if d.Status != store.StatusPending || r.opts.Hold < 0 {
			r.place(p, d)
			continue
		}
		if slab == nil {
			slab = make([]held, 0, len(t.Deliveries))
		}
		slab = append(slab, held{row: d, txn: mark, until: until})
		h := &slab[len(slab)-1]
		r.held[d.ID] = h
		r.order = append(r.order, h)
		mark.held++
	}
	p.b.DeadLetters = append(p.b.DeadLetters, t.DeadLetters...)
	p.b.EventTypes = append(p.b.EventTypes, t.EventTypes...)
	p.written += len(t.Events) + len(t.Deliveries) + len(t.DeadLetters) + payloadRows(t)
	r.advance()
	r.signal()
	return nil
}

// payloadRowBytes is how many bytes of payload count as one more pending
// row: 20,000 rows then hold at most about 80 MB of payloads, whether they
// are 20,000 small events or 300 of 256 KiB.
const payloadRowBytes = 4 << 10

// payloadRows is what t's payloads (and dead letters' raw rows) add to the
// pending rows.
func payloadRows(t *Txn) int {
	n := 0
	for i := range t.Events {
		n += len(t.Events[i].Payload)
	}
	for i := range t.DeadLetters {
		n += len(t.DeadLetters[i].Raw)
	}
	return n / payloadRowBytes
}

// place puts a new delivery's row into the pending batch; under r.mu.
func (r *Recorder) place(p *pendingBatch, d store.Delivery) {
	p.newIdx[d.ID] = len(p.b.Deliveries)
	p.b.Deliveries = append(p.b.Deliveries, d)
}

// release moves a held delivery into the pending batch; under r.mu.
func (r *Recorder) release(h *held) {
	delete(r.held, h.row.ID)
	r.place(r.next, h.row)
	h.txn.held--
	h.txn = nil // marks it released in r.order
}

// advance moves the pending batch's end past the transactions now entirely
// in it or in earlier batches; under r.mu.
func (r *Recorder) advance() {
	n := 0
	for n < len(r.txns) && r.txns[n].held == 0 {
		r.next.maxEnd = max(r.next.maxEnd, r.txns[n].end)
		n++
	}
	if n > 0 {
		clear(r.txns[:n])
		r.txns = r.txns[n:]
	}
}

// expire releases the held deliveries whose hold has ended (all of them
// with force); under r.mu.
func (r *Recorder) expire(now time.Time, force bool) {
	n := 0
	for ; n < len(r.order); n++ {
		h := r.order[n]
		if h.txn == nil {
			continue // released by its result or a park
		}
		if !force && h.until.After(now) {
			break
		}
		r.release(h)
	}
	if n > 0 {
		clear(r.order[:n])
		r.order = r.order[n:]
		r.advance()
		r.signal() // what was released may be worth writing now
	}
}

// Result records an attempt's outcome (delivery.Sink).
func (r *Recorder) Result(res delivery.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.next
	d := res.Delivery
	p.retries = p.retries || d.Status == store.StatusRetrying
	if h, ok := r.held[d.ID]; ok {
		r.release(h)
		r.advance()
	}
	att := res.Attempt
	if i, ok := p.newIdx[d.ID]; ok {
		row := &p.b.Deliveries[i]
		row.Status, row.Attempts, row.NextRetryAt = d.Status, d.Attempts, d.NextRetryAt
		row.LastStatusCode, row.LastResponse, row.LastError = d.LastStatusCode, d.LastResponse, d.LastError
		row.UpdatedAt, row.DeliveredAt = d.UpdatedAt, d.DeliveredAt
		if att.Attempt == 1 && d.Status == store.StatusDelivered {
			// Delivered at the first try, before its row was written: the
			// row keeps the attempt (no second row; see ListAttempts).
			row.LastAttemptAt, row.LastDuration = att.StartedAt, att.Duration
			att.Attempt = 0
		}
	} else if i, ok := p.updIdx[d.ID]; ok {
		p.b.Updates[i] = d
	} else {
		p.updIdx[d.ID] = len(p.b.Updates)
		p.b.Updates = append(p.b.Updates, d)
		p.written++
	}
	if att.Attempt > 0 {
		p.b.Attempts = append(p.b.Attempts, att)
		p.written++
	}
	r.signal()
}

// Park hands a delivery to the scheduler's parking once its row is written
// (delivery.Sink).
func (r *Recorder) Park(endpointID, deliveryID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.held[deliveryID]; ok {
		r.release(h) // its row must be written before it is parked
		r.advance()
	}
	r.next.parks = append(r.next.parks, [2]string{endpointID, deliveryID})
	r.next.written++
	r.signal()
}

// Health records a change of an endpoint's health (delivery.Sink).
func (r *Recorder) Health(h store.EndpointHealth) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next.b.Health = append(r.next.b.Health, h)
	r.next.written++
	r.signal()
}

func (r *Recorder) signal() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run writes batches until ctx ends, then writes what is left (bounded by
// FinalFlush) and returns.
//
// Writes never run on ctx itself: cancelling a write half-way would drop its
// batch while later batches, holding later transactions, could still be
// written and move the cursor past the dropped ones. A batch is only ever
// abandoned when Run stops writing altogether.
func (r *Recorder) Run(ctx context.Context) {
	wctx := context.WithoutCancel(ctx)
	hold := time.NewTimer(time.Hour)
	defer hold.Stop()
	for {
		select {
		case <-r.kick:
		case <-hold.C:
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(wctx, r.opts.FinalFlush)
			r.drain(fctx, fctx, true)
			cancel()
			return
		}
		if linger := r.lingerFor(); linger > 0 {
			hold.Reset(linger) // too soon after the last commit: gather more first
			continue
		}
		if !r.drain(wctx, ctx, false) {
			return
		}
		next := r.holdFor()
		if linger := r.lingerFor(); linger > 0 && (next == 0 || linger < next) {
			next = linger // what arrived during the commit is written after it
		}
		if next > 0 {
			hold.Reset(next)
		}
	}
}

// lingerFor is how long to wait before the next commit: commits start at
// most once per Linger unless a batch is big, so that at a moderate rate
// one commit carries many transactions instead of one each (a commit's
// fixed cost, in walhook and in Postgres, is most of the cost at 1,000
// events/s). Requests never wait for it: they are sent before recording.
func (r *Recorder) lingerFor() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next.written >= r.opts.MaxPending/4 {
		return 0
	}
	return time.Until(r.lastFlush.Add(r.opts.Linger))
}

// holdFor releases the held deliveries whose hold has ended and says how
// long until the next one's does (0: none is held).
func (r *Recorder) holdFor() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	// Holding is for saving writes, never at the cost of memory or of a
	// store that is failing anyway.
	r.expire(now, !r.healthy || len(r.held) >= r.opts.MaxPending/2)
	if len(r.order) == 0 {
		return 0
	}
	return max(r.order[0].until.Sub(now), time.Millisecond)
}

// drain writes until nothing is pending; with force, held deliveries are
// released first. It reports false when it gave up on a batch because stop
// ended; nothing may be written after that.
func (r *Recorder) drain(wctx, stop context.Context, force bool) bool {
	for {
		if force {
			r.mu.Lock()
			r.expire(time.Now(), true)
			r.mu.Unlock()
		} else {
			r.holdFor()
		}
		wrote, ok := r.flushOnce(wctx, stop, force)
		if !ok {
			return false
		}
		if !wrote || !force {
			return true // unforced: the next one waits for Linger
		}
	}
}

// worthWriting reports whether the pending batch should be written now:
// it confirms more of the stream, or holds what someone waits for (a retry
// to schedule, a park, a health change), or it is big. A batch of events
// whose deliveries are still held waits for them, so that at a low rate an
// event, its delivery and its attempt are one commit, not two. Under r.mu.
func (r *Recorder) worthWriting(p *pendingBatch) bool {
	return p.maxEnd > r.durable.Load() || len(p.b.Updates) > 0 || len(p.parks) > 0 || len(p.b.Health) > 0 ||
		p.retries || p.written >= r.opts.MaxPending/4
}

// flushOnce writes the pending batch, retrying failures until stop ends. It
// reports whether there was anything to write and whether it was written.
func (r *Recorder) flushOnce(wctx, stop context.Context, force bool) (wrote, ok bool) {
	r.mu.Lock()
	p := r.next
	if p.written == 0 && p.maxEnd == 0 || !force && !r.worthWriting(p) {
		r.mu.Unlock()
		return false, true
	}
	r.next = newPending(p)
	r.lastFlush = time.Now()
	r.cond.Broadcast()
	r.mu.Unlock()

	b := &p.b
	if b.Rows() > 0 || len(b.EventTypes) > 0 {
		b.Slot, b.Cursor = r.opts.Slot, p.maxEnd
	}
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := r.opts.Store.WriteBatch(wctx, b)
		if err == nil {
			r.m.FlushDuration.Observe(time.Since(start).Seconds())
			r.m.BatchRows.Observe(float64(b.Rows()))
			break
		}
		if stop.Err() != nil {
			r.log.Error("recording stopped with unwritten rows; their transactions will be streamed again", "rows", b.Rows(), "err", err)
			return true, false
		}
		if store.IsDuplicate(err) && !b.Tolerant {
			r.log.Warn("batch hit a duplicate key; writing it again without the rows that exist", "rows", b.Rows(), "err", err)
			b.Tolerant = true
			continue
		}
		r.setHealthy(false)
		r.log.Error("recording failed; retrying", "rows", b.Rows(), "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-stop.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	r.setHealthy(true)
	if p.maxEnd > r.durable.Load() {
		r.durable.Store(p.maxEnd)
	}
	if r.opts.Scheduler != nil {
		for _, rows := range [][]store.Delivery{b.Deliveries, b.Updates} {
			for i := range rows {
				if rows[i].Status == store.StatusRetrying {
					r.opts.Scheduler.Schedule(rows[i].ID, rows[i].NextRetryAt)
				}
			}
		}
		for _, pk := range p.parks {
			r.opts.Scheduler.Park(pk[0], pk[1])
		}
	}
	return true, true
}

func (r *Recorder) setHealthy(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.healthy == ok {
		return
	}
	r.healthy = ok
	if ok {
		close(r.recov)
		r.log.Info("recording recovered")
	} else {
		r.recov = make(chan struct{})
	}
	r.cond.Broadcast()
}
