// Package delivery sends webhook requests: it builds the JSON envelope, signs
// it, POSTs it with a pooled keep-alive client whose dialer enforces the
// outbound network policy, and decides from the answer whether the delivery
// is delivered, retried later or failed.
//
// Each endpoint has its own lane: a queue and at most EndpointInflight
// requests under way, on top of a global limit of Workers. A slow or dead
// endpoint fills only its own lane, so it never delays other endpoints nor
// the replication stream (Submit never blocks).
//
// Results go to a Sink (the recorder), which persists them; the dispatcher
// itself keeps no state that must survive a crash.
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
}

// Result is the outcome of one attempt and what follows from it.
type Result struct {
	Delivery store.Delivery // the delivery's new state (status, attempts, last result)
	Attempt  store.Attempt
}

// Sink receives results; it must not block for long.
type Sink interface {
	Result(Result)
}

// Options configure a Dispatcher.
type Options struct {
	Workers          int
	EndpointInflight int
	Timeout          time.Duration
	BodyLimit        int // characters of response body kept
	UserAgent        string
	Policy           retry.Policy
	Network          netguard.Policy
	Logger           *slog.Logger
	Metrics          *metrics.Metrics
	Now              func() time.Time
}

// Dispatcher runs attempts.
type Dispatcher struct {
	opts   Options
	sink   Sink
	client *http.Client
	sem    chan struct{}
	log    *slog.Logger
	m      *metrics.Metrics

	mu      sync.Mutex
	lanes   map[string]*lane
	stopped bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	rndMu   sync.Mutex
	rnd     *rand.Rand
}

type lane struct {
	queue   []*Job
	head    int
	running int
}

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
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would make the dial-time address check vet the proxy instead
		DialContext:           opts.Network.DialContext(dialer),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          opts.Workers,
		MaxIdleConnsPerHost:   opts.EndpointInflight,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.Timeout,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.Timeout,
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{
		opts:   opts,
		sink:   sink,
		client: &http.Client{Transport: transport, CheckRedirect: netguard.NoRedirects},
		sem:    make(chan struct{}, opts.Workers),
		log:    opts.Logger,
		m:      opts.Metrics,
		lanes:  map[string]*lane{},
		ctx:    ctx,
		cancel: cancel,
		rnd:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// Submit queues a job on its endpoint's lane; it never blocks. After Stop,
// jobs are dropped: their deliveries stay pending in the store and are
// attempted again at the next start.
func (d *Dispatcher) Submit(j *Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	l := d.lanes[j.Endpoint.ID]
	if l == nil {
		l = &lane{}
		d.lanes[j.Endpoint.ID] = l
	}
	l.queue = append(l.queue, j)
	if l.running < d.opts.EndpointInflight {
		l.running++
		d.wg.Add(1)
		go d.work(j.Endpoint.ID, l)
	}
}

// Queued returns how many jobs wait in lanes (not yet started).
func (d *Dispatcher) Queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.lanes {
		n += len(l.queue) - l.head
	}
	return n
}

// work drains a lane; one goroutine per in-flight slot of the lane.
func (d *Dispatcher) work(endpointID string, l *lane) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if l.head == len(l.queue) || d.stopped {
			l.running--
			if l.running == 0 && l.head == len(l.queue) {
				delete(d.lanes, endpointID)
			}
			d.mu.Unlock()
			return
		}
		j := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		if l.head == len(l.queue) {
			l.queue, l.head = l.queue[:0], 0
		}
		d.mu.Unlock()

		select {
		case d.sem <- struct{}{}:
		case <-d.ctx.Done():
			return
		}
		res, ok := d.attempt(j)
		<-d.sem
		if ok {
			d.sink.Result(res)
		}
	}
}

// Stop stops taking jobs and waits for attempts under way; after timeout they
// are cancelled and their results dropped (those deliveries stay pending and
// are attempted again at the next start).
func (d *Dispatcher) Stop(timeout time.Duration) {
	d.mu.Lock()
	d.stopped = true
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
	d.client.CloseIdleConnections()
}

// Envelope builds the request body {"type","timestamp","data"} around the
// payload's raw bytes.
func Envelope(eventType string, at time.Time, payload []byte) []byte {
	typ, _ := json.Marshal(eventType) // a string always marshals
	b := make([]byte, 0, len(payload)+len(typ)+64)
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	b = append(b, `,"timestamp":"`...)
	b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","data":`...)
	b = append(b, payload...)
	b = append(b, '}')
	return b
}

// attempt makes one request; ok is false when it was cancelled by Stop and
// must not be recorded.
func (d *Dispatcher) attempt(j *Job) (Result, bool) {
	ep := j.Endpoint
	body := Envelope(j.EventType, j.EventTime, j.Payload)
	start := d.opts.Now()
	ctx, cancel := context.WithTimeout(d.ctx, d.opts.Timeout)
	defer cancel()

	att := store.Attempt{DeliveryID: j.DeliveryID, Attempt: j.Attempt, EndpointID: ep.ID, StartedAt: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	var resp *http.Response
	if err == nil {
		for k, v := range ep.Headers {
			req.Header.Set(k, v)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", d.opts.UserAgent)
		req.Header.Set("X-Webhook-Event", j.EventType)
		ep.Signer.Sign(j.DeliveryID, start, body).SetHeaders(req.Header)
		d.m.InFlight.Inc()
		resp, err = d.client.Do(req)
		d.m.InFlight.Dec()
	}
	var retryAfter time.Duration
	class := metrics.Class2xx
	if err == nil {
		att.StatusCode = resp.StatusCode
		att.Response = readSnippet(resp.Body, d.opts.BodyLimit)
		resp.Body.Close()
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), start)
		class = statusClass(resp.StatusCode)
	} else {
		if d.ctx.Err() != nil {
			return Result{}, false
		}
		att.Error = describe(err, d.opts.Timeout)
		class = errorClass(err)
	}
	end := d.opts.Now()
	att.Duration = end.Sub(start)
	d.m.Attempts.WithLabelValues(class).Inc()
	d.m.AttemptDuration.Observe(att.Duration.Seconds())

	del := store.Delivery{
		ID: j.DeliveryID, EndpointID: ep.ID, EventID: j.EventID, EventType: j.EventType, TenantID: ep.TenantID,
		Attempts: j.Attempt, MaxAttempts: j.MaxAttempts,
		LastStatusCode: att.StatusCode, LastResponse: att.Response, LastError: att.Error, UpdatedAt: end,
	}
	switch {
	case att.StatusCode >= 200 && att.StatusCode < 300:
		del.Status, del.DeliveredAt = store.StatusDelivered, end
		d.m.Deliveries.WithLabelValues("delivered").Inc()
		if !j.CommitTime.IsZero() {
			d.m.EndToEnd.Observe(end.Sub(j.CommitTime).Seconds())
		}
	default:
		policy := d.opts.Policy
		policy.MaxAttempts = j.MaxAttempts
		d.rndMu.Lock()
		next, ok := policy.Next(j.Attempt, end, d.rnd)
		d.rndMu.Unlock()
		if ok && retryAfter > 0 && (att.StatusCode == http.StatusTooManyRequests || att.StatusCode == http.StatusServiceUnavailable) {
			next = end.Add(min(retryAfter, policy.Longest()))
		}
		if ok {
			del.Status, del.NextRetryAt = store.StatusRetrying, next
		} else {
			del.Status = store.StatusFailed
			d.m.Deliveries.WithLabelValues("failed").Inc()
		}
	}
	return Result{Delivery: del, Attempt: att}, true
}

// readSnippet keeps the first limit characters of a body and drains a bounded
// rest so the connection can be reused.
func readSnippet(r io.Reader, limit int) string {
	buf, _ := io.ReadAll(io.LimitReader(r, int64(limit)*utf8.UTFMax))
	_, _ = io.CopyN(io.Discard, r, 64<<10)
	s := strings.ToValidUTF8(string(buf), "\uFFFD")
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit])
	}
	return s
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
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}
