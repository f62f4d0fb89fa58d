// Package delivery sends webhook requests: it builds the JSON envelope, signs
// it, POSTs it with a pooled keep-alive client whose dialer enforces the
// outbound network policy, and decides from the answer whether the delivery
// is delivered, retried later or failed.
//
// Each endpoint has its own lane: a queue and at most EndpointInflight
// requests under way, on top of a global limit of Workers. A slow or dead
// endpoint fills only its own lane, so it never delays other endpoints nor
// the replication stream (Submit never blocks). A lane holds at most
// QueueLimit jobs; beyond that, deliveries are parked by id (their payloads
// leave memory), and the lane pulls them back through the scheduler, as
// much as it has room for, each time it is half empty.
//
// The stream submits through Offer, which holds it back while the lane
// already has its soft limit of jobs (a few per in-flight slot): a burst
// then waits in the WAL, where it costs nothing, instead of being written
// to the store and read back. A lane that makes no room for StreamWait is
// overloaded (its endpoint is slow, not busy): the stream stops waiting for
// it, and it queues up to QueueLimit and parks the rest, until it drains.
//
// Each endpoint also has a circuit breaker: after Breaker.Failures
// consecutive failed attempts its deliveries are parked without spending
// attempts, until a probe request, sent after a cooldown that doubles with
// each failed probe, succeeds. An endpoint that answers 410 Gone, or whose
// attempts have all failed for DisableAfter, is disabled.
//
// Results, parkings and health changes go to a Sink (the recorder), which
// persists them; the dispatcher itself keeps no state that must survive a
// crash (a restart forgets open circuits: the first failures reopen them).
package delivery

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/retry"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
)

// Job is one attempt to make.
type Job struct {
	DeliveryID string
	Endpoint   *route.Endpoint
	EventID    string
	EventType  string
	EventTime  time.Time
	Payload    []byte // raw JSON, forwarded unparsed
	// Attempt is this attempt's number, from 1.
	Attempt     int
	MaxAttempts int
	// CommitTime of the source transaction; zero for retries.
	CommitTime time.Time

	probe bool // the half-open circuit's probe
}

// Result is the outcome of one attempt and what follows from it.
type Result struct {
	Delivery store.Delivery // the delivery's new state (status, attempts, last result)
	Attempt  store.Attempt
}

// Sink receives what the dispatcher decides; it must not block for long.
type Sink interface {
	// Result records an attempt's outcome.
	Result(Result)
	// Park records that a delivery was not attempted because its endpoint
	// cannot take it now; it is to be released by Resumer.Resume.
	Park(endpointID, deliveryID string)
	// Health records a change of an endpoint's health.
	Health(store.EndpointHealth)
}

// Resumer releases parked deliveries of an endpoint, oldest first, when it
// can take them again: at most n (n <= 0: a lane's worth), minus those
// already on their way.
type Resumer interface {
	Resume(endpointID string, n int)
	// Parked is how many deliveries are parked, over all endpoints; it
	// must be cheap, it is asked at every job while a lane has room.
	Parked() int
}

// Breaker configures the per-endpoint circuit breaker.
type Breaker struct {
	Failures    int // consecutive failures that open the circuit; 0: never
	Cooldown    time.Duration
	MaxCooldown time.Duration
}

// Options configure a Dispatcher.
type Options struct {
	Workers          int
	EndpointInflight int
	Timeout          time.Duration
	BodyLimit        int // characters of response body kept
	UserAgent        string
	// QueueLimit bounds the jobs waiting in one endpoint's lane.
	QueueLimit int
	// SoftLimit is the lane length at which Offer waits for room (0: 32
	// per in-flight slot, at least 256, at most QueueLimit).
	SoftLimit int
	// StreamWait is how long Offer waits for room before it declares the
	// lane overloaded (0: 250ms).
	StreamWait time.Duration
	Breaker    Breaker
	// DisableAfter disables an endpoint failing for this long; 0: never.
	DisableAfter time.Duration
	// Policy is the default retry policy; endpoints may override parts.
	Policy  retry.Policy
	Resumer Resumer
	Network netguard.Policy
	// TLS is the base TLS configuration for https endpoints (nil: the
	// system's roots, TLS 1.2 at least); tests set their own roots.
	TLS     *tls.Config
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// Dispatcher runs attempts.
type Dispatcher struct {
	opts   Options
	sink   Sink
	client *poster
	sem    chan struct{}
	log    *slog.Logger
	m      *metrics.Metrics

	mu      sync.Mutex
	room    *sync.Cond // broadcast when a lane's length drops below SoftLimit
	waiting int        // Offers waiting on room
	lanes   map[string]*lane
	health  map[string]*health
	slots   map[string]time.Time // rate-limited endpoints: when the next request may start
	active  map[string]struct{}  // delivery ids queued or under way
	// activePeak is active's largest size since it was last made: a map
	// keeps its room when emptied, so one drained backlog would hold it.
	activePeak int
	nhealth    atomic.Int32 // len(health), read without mu on the hot path
	stopped    bool
	wg         sync.WaitGroup
	ctx        context.Context
	cancel     context.CancelFunc
	rndMu      sync.Mutex
	rnd        *rand.Rand
	bodies     sync.Pool // *[]byte: request bodies being built and sent
}

type lane struct {
	queue   []*Job
	head    int
	running int
	// overloaded: it made no room for StreamWait, so Offer does not wait
	// for it until it has drained to half the soft limit.
	overloaded bool
	pops       uint64 // jobs taken from the queue, to tell slow from stuck
}

func (l *lane) len() int { return len(l.queue) - l.head }

// New makes a dispatcher; Stop ends it.
func New(opts Options, sink Sink) *Dispatcher {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = 10000
	}
	if opts.SoftLimit <= 0 {
		opts.SoftLimit = max(32*opts.EndpointInflight, 256)
	}
	opts.SoftLimit = min(opts.SoftLimit, opts.QueueLimit)
	if opts.StreamWait <= 0 {
		opts.StreamWait = 250 * time.Millisecond
	}
	if opts.Resumer == nil {
		opts.Resumer = noResumer{}
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		opts:   opts,
		sink:   sink,
		client: newPoster(opts.Network.DialContext(dialer), opts.TLS, opts.EndpointInflight, opts.Workers),
		sem:    make(chan struct{}, opts.Workers),
		log:    opts.Logger,
		m:      opts.Metrics,
		lanes:  map[string]*lane{},
		active: map[string]struct{}{},
		health: map[string]*health{},
		slots:  map[string]time.Time{},
		ctx:    ctx,
		cancel: cancel,
		rnd:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	d.room = sync.NewCond(&d.mu)
	d.bodies.New = func() any { return new([]byte) }
	return d
}

// pace waits, for an endpoint with a rate limit, until its next request may
// start; requests are spaced evenly. It waits in the lane's worker before
// taking a global worker slot, so a rate-limited endpoint delays only
// itself. It reports false when the dispatcher stopped meanwhile.
func (d *Dispatcher) pace(j *Job) bool {
	rps := j.Endpoint.RateLimit
	if rps <= 0 {
		return true
	}
	now := d.opts.Now()
	d.mu.Lock()
	at := d.slots[j.Endpoint.ID]
	if at.Before(now) {
		at = now
	}
	d.slots[j.Endpoint.ID] = at.Add(time.Second / time.Duration(rps))
	d.mu.Unlock()
	if wait := at.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-d.ctx.Done():
			return false
		}
	}
	return true
}

type noResumer struct{}

func (noResumer) Resume(string, int) {}
func (noResumer) Parked() int        { return 0 }

// Submit queues a job on its endpoint's lane; it never blocks. A delivery
// already queued or under way is not queued twice. A job its endpoint cannot
// take now (circuit open, queue full) is parked. After Stop, jobs are
// dropped: their deliveries stay pending or retrying in the store and are
// attempted again at the next start.
func (d *Dispatcher) Submit(j *Job) {
	d.mu.Lock()
	park := d.submitLocked(j)
	d.mu.Unlock()
	if park {
		d.sink.Park(j.Endpoint.ID, j.DeliveryID)
	}
}

// submitLocked is Submit under d.mu; it reports whether the job is to be
// parked (which the caller does once it has let go of d.mu).
func (d *Dispatcher) submitLocked(j *Job) (park bool) {
	id := j.Endpoint.ID
	if _, dup := d.active[j.DeliveryID]; dup || d.stopped {
		return false
	}
	l := d.laneOf(id)
	if l.len() >= d.opts.QueueLimit || !d.health[id].admit(j) {
		return true
	}
	d.active[j.DeliveryID] = struct{}{}
	d.activePeak = max(d.activePeak, len(d.active))
	l.queue = append(l.queue, j)
	if l.running < d.opts.EndpointInflight {
		l.running++
		d.wg.Add(1)
		go d.work(id, l)
	}
	return false
}

// Offer submits a job from the stream. While the job's lane holds its soft
// limit of jobs it first waits for room, up to StreamWait; a lane that
// makes none in that time is marked overloaded and not waited for again
// until it drains. Jobs its endpoint will not take now (circuit open) are
// not waited for: they are parked. It fails only when ctx ends.
func (d *Dispatcher) Offer(ctx context.Context, j *Job) error {
	d.mu.Lock()
	l := d.lanes[j.Endpoint.ID]
	if l == nil || l.overloaded || l.len() < d.opts.SoftLimit || d.stopped || !d.health[j.Endpoint.ID].closed() {
		// The common case: one lock for the check and the queueing.
		park := d.submitLocked(j)
		d.mu.Unlock()
		if park {
			d.sink.Park(j.Endpoint.ID, j.DeliveryID)
		}
		return nil
	}
	return d.offerWhenRoom(ctx, j, l)
}

// offerWhenRoom is Offer's wait for room, entered with d.mu held and l at
// its soft limit. It is a function of its own because the timers' closures
// move what they capture to the heap: Offer's common case stays free of
// allocations.
func (d *Dispatcher) offerWhenRoom(ctx context.Context, j *Job, l *lane) error {
	// cond.Wait cannot watch a deadline or ctx: their ends wake it.
	var expired atomic.Bool
	wake := func() {
		d.mu.Lock()
		d.room.Broadcast()
		d.mu.Unlock()
	}
	t := time.AfterFunc(d.opts.StreamWait, func() { expired.Store(true); wake() })
	// A lane that starts nothing at all for a tenth of that is stuck (its
	// requests hang): no need to wait the whole of StreamWait to know.
	lastPops, stuck, done := l.pops, false, false
	var tp *time.Timer
	tick := d.opts.StreamWait / 10
	tp = time.AfterFunc(tick, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if done {
			return
		}
		if l.pops == lastPops {
			stuck = true
			d.room.Broadcast()
			return
		}
		lastPops = l.pops
		tp.Reset(tick)
	})
	stop := context.AfterFunc(ctx, wake)
	// Once waiting, wait for a quarter of the lane to drain, not for one
	// slot: one wake-up per few dozen jobs instead of one per job.
	d.waiting++
	for l.len() >= d.lowWater() && !l.overloaded && !d.stopped && ctx.Err() == nil {
		if expired.Load() || stuck {
			l.overloaded = true
			d.log.Info("endpoint is overloaded: its queue made no room; the stream goes on without waiting for it",
				"endpoint_id", j.Endpoint.ID, "queued", l.len(), "moving", !stuck)
			break
		}
		d.room.Wait()
		l = d.laneOf(j.Endpoint.ID)
	}
	d.waiting--
	done = true // the progress check must not re-arm itself any more
	d.mu.Unlock()
	t.Stop()
	tp.Stop()
	stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	d.Submit(j)
	return nil
}

// forgetActive removes a delivery from those queued or under way, and
// lets go of the map's room once a large backlog has drained; under d.mu.
func (d *Dispatcher) forgetActive(id string) {
	delete(d.active, id)
	if len(d.active) == 0 && d.activePeak > 4096 {
		d.active, d.activePeak = map[string]struct{}{}, 0
	}
}

// lowWater is the lane length below which a waiting Offer goes on.
func (d *Dispatcher) lowWater() int { return max(d.opts.SoftLimit*3/4, 1) }

// laneOf returns the endpoint's lane, made if needed; under d.mu.
func (d *Dispatcher) laneOf(endpointID string) *lane {
	l := d.lanes[endpointID]
	if l == nil {
		l = &lane{}
		d.lanes[endpointID] = l
	}
	return l
}

// Queued returns how many jobs wait in lanes (not yet started).
func (d *Dispatcher) Queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.lanes {
		n += l.len()
	}
	return n
}

// work drains a lane; one goroutine per in-flight slot of the lane.
func (d *Dispatcher) work(endpointID string, l *lane) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if l.len() == 0 || d.stopped {
			l.running--
			if l.running == 0 && l.len() == 0 && d.lanes[endpointID] == l {
				delete(d.lanes, endpointID)
			}
			d.mu.Unlock()
			return
		}
		j := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		l.pops++
		if l.len() == 0 {
			l.queue, l.head = l.queue[:0], 0
		}
		if d.waiting > 0 && l.len() == d.lowWater()-1 {
			d.room.Broadcast()
		}
		if l.overloaded && l.len() <= d.opts.SoftLimit/2 {
			l.overloaded = false
		}
		// Jobs queued before the circuit opened wait like the rest.
		park := !d.health[endpointID].admit(j)
		if park {
			d.forgetActive(j.DeliveryID)
		}
		// A half-empty lane pulls parked deliveries back (those parked
		// because it was full, or released after its circuit closed).
		room := d.opts.QueueLimit - l.len()
		pull := !park && room >= d.opts.QueueLimit/2 && d.health[endpointID].closed() && d.opts.Resumer.Parked() > 0
		d.mu.Unlock()
		if pull {
			d.opts.Resumer.Resume(endpointID, room)
		}
		if park {
			d.sink.Park(endpointID, j.DeliveryID)
			continue
		}
		if !d.pace(j) {
			return
		}

		select {
		case d.sem <- struct{}{}:
		case <-d.ctx.Done():
			return
		}
		res := d.attempt(j)
		<-d.sem
		var changes []store.EndpointHealth
		var resume bool
		if !res.interrupted {
			changes, resume = d.observe(j, &res.Attempt, res.Delivery.UpdatedAt)
		}
		// Before the result goes out: a delivery submitted again once its
		// result is known (a manual re-send) must not look under way. A
		// plain map under mu costs less than a sync.Map's allocations.
		d.mu.Lock()
		d.forgetActive(j.DeliveryID)
		d.mu.Unlock()
		for _, h := range changes {
			d.sink.Health(h)
		}
		d.sink.Result(res.Result)
		if resume {
			d.opts.Resumer.Resume(endpointID, 0)
		}
	}
}

// Stop stops taking jobs and waits for attempts under way; after timeout they
// are cancelled and recorded as retrying, due at once (the cut attempt does
// not count). Queued jobs stay pending in the store for the next start.
func (d *Dispatcher) Stop(timeout time.Duration) {
	d.mu.Lock()
	d.stopped = true
	d.room.Broadcast()
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		d.cancel()
		<-done
	}
	d.cancel()
	d.mu.Lock()
	for id, h := range d.health {
		d.forget(id, h)
	}
	d.mu.Unlock()
	d.client.closeIdle(true)
}

// Envelope builds the request body {"type","timestamp","data"} around the
// payload's raw bytes.
func Envelope(eventType string, at time.Time, payload []byte) []byte {
	return AppendEnvelope(make([]byte, 0, len(payload)+len(eventType)+64), eventType, at, payload)
}

// AppendEnvelope appends the envelope Envelope makes to b.
func AppendEnvelope(b []byte, eventType string, at time.Time, payload []byte) []byte {
	b = slices.Grow(b, len(payload)+len(eventType)+64)
	b = append(b, `{"type":`...)
	b = appendJSONString(b, eventType)
	b = append(b, `,"timestamp":"`...)
	b = appendTimestamp(b, at)
	b = append(b, `","data":`...)
	b = append(b, payload...)
	b = append(b, '}')
	return b
}

// appendTimestamp appends t in UTC as 2006-01-02T15:04:05.000000Z: what
// AppendFormat writes, at a tenth of its cost (it was 3% of walhook's CPU).
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends v in exactly n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= len(b)-n; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// appendJSONString appends s as encoding/json writes it. Event types are
// plain ASCII names: those are copied as they are, without the allocation
// of json.Marshal, which handles anything else.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// outcome is an attempt's result; interrupted when Stop cut it short.
type outcome struct {
	Result
	interrupted bool
}

// policy is the endpoint's retry policy: the defaults with its overrides.
func (d *Dispatcher) policy(j *Job) retry.Policy {
	p := d.opts.Policy
	if len(j.Endpoint.RetrySchedule) > 0 {
		p.Schedule = j.Endpoint.RetrySchedule
	}
	p.RetryClientErrors = j.Endpoint.RetryClientErrors
	p.MaxAttempts = j.MaxAttempts
	return p
}

// attempt makes one request. One cut short by Stop is recorded as retrying,
// due at once, so the next start attempts it again.
func (d *Dispatcher) attempt(j *Job) outcome {
	ep := j.Endpoint
	// The body is copied into the connection's buffer to be sent, so its
	// own buffer goes back to the pool once the attempt is over.
	bp := d.bodies.Get().(*[]byte)
	body := AppendEnvelope((*bp)[:0], j.EventType, j.EventTime, j.Payload)
	defer func() {
		if cap(body) <= 64<<10 { // a huge payload does not stay pooled
			*bp = body
			d.bodies.Put(bp)
		}
	}()
	start := d.opts.Now()

	att := store.Attempt{DeliveryID: j.DeliveryID, Attempt: j.Attempt, EndpointID: ep.ID, StartedAt: start}
	var hs [9][2]string
	headers := append(hs[:0], [2]string{"Content-Type", "application/json"},
		[2]string{"User-Agent", d.opts.UserAgent}, [2]string{"X-Webhook-Event", j.EventType})
	headers = ep.Signer.Sign(j.DeliveryID, start, body).AppendHeaders(headers)
	d.m.InFlight.Inc()
	ans, err := d.client.post(d.ctx, &request{url: ep.URL, headers: headers, extra: ep.Headers, body: body,
		limit: d.opts.BodyLimit}, time.Now().Add(d.opts.Timeout)) // the real clock: Now may be a test's
	d.m.InFlight.Dec()
	var retryAfter time.Duration
	var interrupted bool
	class := metrics.Class2xx
	if err == nil {
		att.StatusCode = ans.status
		att.Response = ans.snippet
		retryAfter = parseRetryAfter(ans.retryAfter, start)
		class = statusClass(ans.status)
	} else if d.ctx.Err() != nil {
		interrupted = true
		att.Error = "interrupted: walhook shut down during the attempt"
	} else {
		att.Error = describe(err, d.opts.Timeout)
		class = errorClass(err)
	}
	end := d.opts.Now()
	att.Duration = end.Sub(start)
	if !interrupted {
		d.m.AttemptDuration.Observe(att.Duration.Seconds())
		d.m.Inc(d.m.Attempts, class)
	}

	del := store.Delivery{
		ID: j.DeliveryID, EndpointID: ep.ID, EventID: j.EventID, EventType: j.EventType, TenantID: ep.TenantID,
		Attempts: j.Attempt, MaxAttempts: j.MaxAttempts,
		LastStatusCode: att.StatusCode, LastResponse: att.Response, LastError: att.Error, UpdatedAt: end,
	}
	switch {
	case interrupted:
		// Not the endpoint's fault: the attempt does not count.
		del.Status, del.NextRetryAt, del.Attempts = store.StatusRetrying, end, j.Attempt-1
		att = store.Attempt{}
	case att.StatusCode >= 200 && att.StatusCode < 300:
		del.Status, del.DeliveredAt = store.StatusDelivered, end
		d.m.Inc(d.m.Deliveries, "delivered")
		d.m.EndpointOutcome(ep.ID, "delivered")
		if !j.CommitTime.IsZero() {
			d.m.EndToEnd.Observe(end.Sub(j.CommitTime).Seconds())
		}
	default:
		policy := d.policy(j)
		var next time.Time
		ok := policy.Retryable(att.StatusCode)
		if ok {
			d.rndMu.Lock()
			next, ok = policy.Next(j.Attempt, end, d.rnd)
			d.rndMu.Unlock()
		}
		if ok && retryAfter > 0 && (att.StatusCode == http.StatusTooManyRequests || att.StatusCode == http.StatusServiceUnavailable) {
			next = end.Add(min(retryAfter, policy.Longest()))
		}
		if ok {
			del.Status, del.NextRetryAt = store.StatusRetrying, next
		} else {
			del.Status = store.StatusFailed
			d.m.Inc(d.m.Deliveries, "failed")
			d.m.EndpointOutcome(ep.ID, "failed")
		}
	}
	return outcome{Result: Result{Delivery: del, Attempt: att}, interrupted: interrupted}
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func statusClass(code int) string {
	switch {
	case code < 300:
		return metrics.Class2xx
	case code < 400:
		return metrics.Class3xx
	case code < 500:
		return metrics.Class4xx
	default:
		return metrics.Class5xx
	}
}

func errorClass(err error) string {
	switch {
	case errors.Is(err, netguard.ErrBlocked):
		return metrics.ClassBlocked
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return metrics.ClassTimeout
	default:
		return metrics.ClassConnError
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describe turns a client error into the text kept on the attempt, without
// the URL (it may carry a secret in its query).
func describe(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout after " + timeout.String()
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if utf8.RuneCountInString(msg) > 500 {
		msg = string([]rune(msg)[:500])
	}
	return msg
}
