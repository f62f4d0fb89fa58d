package bench

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walhook/walhook/internal/signature"
)

// rawHeader marks the requests of the raw HTTP ceiling: receivers answer them
// like webhooks (same latency) but do not record them.
const rawHeader = "X-Bench-Raw"

// clock is the one time base of a run: the producer's commit times and the
// receivers' read times are nanoseconds on it, monotonic and comparable.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

type receiverOptions struct {
	Latency      time.Duration
	FailureRatio float64
	// Hang: never answer; the request ends when walhook gives up on it.
	Hang   bool
	Verify bool
	Clock  clock
	// Server is ServerLean or ServerNetHTTP.
	Server string
}

// hit is what a receiver knows of one delivery (one webhook-id).
type hit struct {
	seq      int64
	firstAt  int64 // first request read, on the run's clock
	okAt     int64 // request answered 2xx; 0 = none yet
	requests int32
}

// receiverCounts are a receiver's request counters.
type receiverCounts struct {
	Requests int64 `json:"requests"`
	// Failed were answered 500 on purpose (failure ratio).
	Failed int64 `json:"failed"`
	// DuplicateOK: a webhook-id answered 2xx before came again.
	DuplicateOK int64 `json:"duplicate_ok"`
	// DuplicateEvents: a second webhook-id for an event the endpoint already
	// had, i.e. one event delivered as two deliveries.
	DuplicateEvents int64 `json:"duplicate_events"`
	BadSignatures   int64 `json:"bad_signatures"`
	// Unparsable: no webhook-id or no "seq" in the body.
	Unparsable int64 `json:"unparsable"`
}

func (c *receiverCounts) add(o receiverCounts) {
	c.Requests += o.Requests
	c.Failed += o.Failed
	c.DuplicateOK += o.DuplicateOK
	c.DuplicateEvents += o.DuplicateEvents
	c.BadSignatures += o.BadSignatures
	c.Unparsable += o.Unparsable
}

// receiver is one webhook endpoint: a keep-alive HTTP server on loopback. One
// server per endpoint gives each its own host:port, as real endpoints have,
// so walhook's per-host connection pool is not shared between them.
type receiver struct {
	opts receiverOptions
	url  string
	// closeServer stops the server and its connections.
	closeServer func()
	// stop releases handlers that wait (latency, hang) when the run ends.
	stop chan struct{}

	// okDistinct counts deliveries answered 2xx, once per event: what the
	// run waits for.
	okDistinct atomic.Int64
	raw        atomic.Int64

	mu       sync.Mutex
	verifier *signature.Verifier
	// The books hold indexes into hitList rather than pointers: maps of
	// pointers cost the garbage collector a scan of every entry, and the
	// receivers share the machine with what they measure.
	hitList []hit
	byID    map[string]int32 // dedupe by webhook-id
	bySeq   map[int64]int32  // the first delivery seen of each event
	counts  receiverCounts
	bodies  sync.Pool // *[]byte
}

func newReceiver(opts receiverOptions) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver listen: %w", err)
	}
	rc := &receiver{
		opts:  opts,
		url:   "http://" + ln.Addr().String() + "/hook",
		stop:  make(chan struct{}),
		byID:  map[string]int32{},
		bySeq: map[int64]int32{},
	}
	rc.bodies.New = func() any { return new([]byte) }
	switch opts.Server {
	case ServerLean, "":
		srv := serveLean(ln, rc)
		rc.closeServer = srv.close
	case ServerNetHTTP:
		srv := &http.Server{
			Handler:           rc,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
			// Aborted and timed-out requests are expected here (hanging
			// endpoints, walhook's timeouts); they are counted, not logged.
			ErrorLog: log.New(io.Discard, "", 0),
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.Serve(ln)
		}()
		rc.closeServer = func() {
			_ = srv.Close()
			<-served
		}
	default:
		ln.Close()
		return nil, fmt.Errorf("receiver server %q: want %q or %q", opts.Server, ServerLean, ServerNetHTTP)
	}
	return rc, nil
}

func (rc *receiver) setSecret(s string) error {
	v, err := signature.NewVerifier(s)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	rc.verifier = v
	rc.mu.Unlock()
	return nil
}

// close stops the server and every handler still waiting.
func (rc *receiver) close() {
	close(rc.stop)
	rc.closeServer()
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bp := rc.bodies.Get().(*[]byte)
	body, err := readBody(r, *bp)
	defer func() {
		if cap(body) <= 64<<10 {
			*bp = body
			rc.bodies.Put(bp)
		}
	}()
	at := rc.opts.Clock.now()
	if err != nil {
		return // the client went away mid-body
	}
	status, wait := rc.handle(r.Header.Get(rawHeader) != "", r.Header, body, at)
	if !rc.wait(r.Context().Done(), wait) || status == 0 {
		// Returning would answer 200; abort the connection instead.
		panic(http.ErrAbortHandler)
	}
	w.WriteHeader(status)
}

// handle books one request read at the time at, whichever server read it,
// and says how to answer: status after waiting for wait (status 0: never
// answer, the request is aborted once released; wait < 0: until released).
// h needs only the signature headers.
func (rc *receiver) handle(raw bool, h http.Header, body []byte, at int64) (status int, wait time.Duration) {
	if raw {
		rc.raw.Add(1)
		return http.StatusNoContent, rc.opts.Latency
	}
	if rc.opts.Hang {
		rc.mu.Lock()
		rc.counts.Requests++
		rc.mu.Unlock()
		return 0, -1
	}
	id := h.Get(signature.HeaderID)
	seq, parsed := parseSeq(body)
	fail := rc.opts.FailureRatio > 0 && rand.Float64() < rc.opts.FailureRatio
	rc.mu.Lock()
	verifier := rc.verifier
	rc.record(id, seq, parsed, fail, at)
	rc.mu.Unlock()
	if rc.opts.Verify && (verifier == nil || verifier.Verify(h, body, time.Now(), signature.DefaultTolerance) != nil) {
		rc.mu.Lock()
		rc.counts.BadSignatures++
		rc.mu.Unlock()
	}
	if fail {
		return http.StatusInternalServerError, rc.opts.Latency
	}
	return http.StatusNoContent, rc.opts.Latency
}

// record books one webhook request; rc.mu is held.
func (rc *receiver) record(id string, seq int64, parsed, fail bool, at int64) {
	rc.counts.Requests++
	if id == "" || !parsed {
		rc.counts.Unparsable++
		return
	}
	i, known := rc.byID[id]
	if !known {
		i = int32(len(rc.hitList))
		rc.hitList = append(rc.hitList, hit{seq: seq, firstAt: at})
		rc.byID[id] = i
		if _, dup := rc.bySeq[seq]; dup {
			rc.counts.DuplicateEvents++
		} else {
			rc.bySeq[seq] = i
		}
	}
	h := &rc.hitList[i]
	h.requests++
	switch {
	case fail:
		rc.counts.Failed++
	case h.okAt != 0:
		rc.counts.DuplicateOK++
	default:
		h.okAt = at
		if rc.bySeq[seq] == i {
			rc.okDistinct.Add(1)
		}
	}
}

// wait sleeps for d (d < 0: until released) and reports whether it did, or
// false when the request (gone) or the run ended first: such a request is
// aborted rather than answered.
func (rc *receiver) wait(gone <-chan struct{}, d time.Duration) bool {
	if d == 0 {
		return true
	}
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-gone:
	case <-rc.stop:
	}
	return false
}

// hits copies what the receiver saw, by event sequence number.
func (rc *receiver) hits() (map[int64]hit, receiverCounts) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[int64]hit, len(rc.bySeq))
	for seq, i := range rc.bySeq {
		out[seq] = rc.hitList[i]
	}
	return out, rc.counts
}

// countUnparsable books a request the server could not read.
func (rc *receiver) countUnparsable() {
	rc.mu.Lock()
	rc.counts.Requests++
	rc.counts.Unparsable++
	rc.mu.Unlock()
}

func (rc *receiver) requestCount() int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.counts.Requests
}

// readBody reads the request's body into buf, reused: the size is known
// from Content-Length (walhook always sends it), so one read fills it.
func readBody(r *http.Request, buf []byte) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= 16<<20 {
		buf = slices.Grow(buf[:0], int(n))[:n]
		_, err := io.ReadFull(r.Body, buf)
		return buf, err
	}
	b := bytes.NewBuffer(buf[:0])
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}

var seqKey = []byte(`"seq":`)

// parseSeq finds the sequence number in a webhook body
// {"type":…,"timestamp":…,"data":{"seq": N, "padding": …}} without decoding
// the JSON: the receivers share the machine with walhook, so they stay cheap.
// jsonb orders shorter keys first, so "seq" precedes "padding".
func parseSeq(body []byte) (int64, bool) {
	i := bytes.Index(body, seqKey)
	if i < 0 {
		return 0, false
	}
	b := body[i+len(seqKey):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var n int64
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0 && digits < 19
}
