package delivery

import (
	"fmt"
	"time"

	"github.com/walhook/walhook/internal/store"
)

// circuit is an endpoint's breaker state.
type circuit int

const (
	closed   circuit = iota // attempts flow
	open                    // attempts wait until the cooldown ends
	halfOpen                // one probe attempt may go; its result decides
	gone                    // disabled (410 Gone, or failing too long): wait for re-enabling
)

func (c circuit) String() string {
	return [...]string{"closed", "open", "half-open", "disabled"}[c]
}

// health is what the dispatcher knows of a failing endpoint. Healthy
// endpoints have none, so memory follows the number of failing endpoints.
type health struct {
	fails        int       // consecutive failed attempts
	failingSince time.Time // start of the run of failures
	recorded     bool      // failingSince is in the store
	state        circuit
	cooldown     time.Duration
	probing      bool // the half-open probe is under way
	timer        *time.Timer
}

// admit decides, under d.mu, whether a job may be attempted now; a job
// admitted in half-open state becomes the probe.
func (h *health) admit(j *Job) bool {
	switch {
	case h == nil || h.state == closed || j.probe:
		return true
	case h.state == halfOpen && !h.probing:
		h.probing, j.probe = true, true
		return true
	default:
		return false
	}
}

// closed reports whether attempts flow freely (no failing run has opened
// the circuit); under d.mu.
func (h *health) closed() bool { return h == nil || h.state == closed }

// healthOf returns the endpoint's health, created from its recorded state.
func (d *Dispatcher) healthOf(j *Job) *health {
	h := d.health[j.Endpoint.ID]
	if h == nil {
		h = &health{failingSince: j.Endpoint.FailingSince, recorded: !j.Endpoint.FailingSince.IsZero()}
		d.health[j.Endpoint.ID] = h
		d.nhealth.Store(int32(len(d.health)))
	}
	return h
}

// observe updates the endpoint's health with an attempt's outcome and
// returns what must be done outside the lock: health changes to record and
// whether parked deliveries may flow again.
func (d *Dispatcher) observe(j *Job, att *store.Attempt, end time.Time) (changes []store.EndpointHealth, resume bool) {
	ep := j.Endpoint
	ok := att.StatusCode >= 200 && att.StatusCode < 300
	if ok && ep.FailingSince.IsZero() && d.nhealth.Load() == 0 {
		return nil, false // the common case, without the lock: nothing is failing
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.health[ep.ID]
	if att.StatusCode >= 200 && att.StatusCode < 300 {
		if h == nil && ep.FailingSince.IsZero() {
			return nil, false // the common case: healthy and known to be
		}
		h = d.healthOf(j)
		if h.recorded {
			changes = append(changes, store.EndpointHealth{EndpointID: ep.ID})
		}
		if h.state != closed {
			d.log.Info("endpoint circuit closed", "endpoint_id", ep.ID, "after_failures", h.fails)
		}
		resume = h.state != closed
		d.forget(ep.ID, h)
		if !ep.FailingSince.IsZero() {
			// Until the cleared failing_since comes back on the stream,
			// remember it is cleared, so it is not recorded again each time.
			d.health[ep.ID] = &health{}
			d.nhealth.Store(int32(len(d.health)))
		}
		return changes, resume
	}
	h = d.healthOf(j)
	if h.state == gone || (h.state == halfOpen && !j.probe) {
		// Gone waits for re-enabling; while half-open only the probe
		// decides (this request was sent before the circuit opened).
		return nil, false
	}
	h.fails++
	cb := d.opts.Breaker
	if h.failingSince.IsZero() {
		h.failingSince = att.StartedAt
	}
	// The run of failures is recorded once it is more than a blip (the
	// breaker's threshold): a flaky endpoint must not rewrite its row, and
	// so reload it through the stream, at every other request.
	if h.fails == max(cb.Failures, 1) && !h.recorded {
		h.recorded = true
		changes = append(changes, store.EndpointHealth{EndpointID: ep.ID, FailingSince: h.failingSince})
	}
	switch {
	case att.StatusCode == 410:
		h.state = gone
		changes = append(changes, store.EndpointHealth{EndpointID: ep.ID, Disable: "the endpoint answered 410 Gone"})
		d.log.Warn("endpoint disabled: it answered 410 Gone", "endpoint_id", ep.ID)
	case d.opts.DisableAfter > 0 && end.Sub(h.failingSince) >= d.opts.DisableAfter:
		h.state = gone
		reason := fmt.Sprintf("every attempt failed since %s (%d in a row here)", h.failingSince.UTC().Format(time.RFC3339), h.fails)
		changes = append(changes, store.EndpointHealth{EndpointID: ep.ID, Disable: reason})
		d.log.Warn("endpoint disabled: failing for longer than endpoint.disable_after", "endpoint_id", ep.ID, "failing_since", h.failingSince)
	case h.state == halfOpen:
		h.cooldown = min(2*h.cooldown, cb.MaxCooldown)
		d.trip(ep.ID, h)
	case h.state == closed && cb.Failures > 0 && h.fails >= cb.Failures:
		h.cooldown = cb.Cooldown
		d.trip(ep.ID, h)
		d.log.Warn("endpoint circuit opened", "endpoint_id", ep.ID, "consecutive_failures", h.fails, "probe_in", h.cooldown)
	}
	return changes, false
}

// trip opens the circuit until the cooldown ends, then lets one probe go.
func (d *Dispatcher) trip(id string, h *health) {
	h.state, h.probing = open, false
	if h.timer != nil {
		h.timer.Stop()
	}
	h.timer = time.AfterFunc(h.cooldown, func() {
		d.mu.Lock()
		if d.stopped || d.health[id] != h || h.state != open {
			d.mu.Unlock()
			return
		}
		h.state = halfOpen
		d.mu.Unlock()
		// One parked delivery becomes the probe; with none parked, the
		// next delivery to arrive is.
		d.opts.Resumer.Resume(id, 1)
	})
}

// forget drops an endpoint's health (it is healthy again or was changed).
func (d *Dispatcher) forget(id string, h *health) {
	if h.timer != nil {
		h.timer.Stop()
	}
	delete(d.health, id)
	d.nhealth.Store(int32(len(d.health)))
}

// EndpointChanged is told of every change to an endpoint. Re-enabling it or
// changing its URL closes its circuit: whatever failed may be fixed.
func (d *Dispatcher) EndpointChanged(e *store.Endpoint, oldURL string) {
	d.mu.Lock()
	h := d.health[e.ID]
	reset := h != nil && e.Active && (h.state == gone || e.URL != oldURL)
	if reset {
		d.forget(e.ID, h)
	}
	d.mu.Unlock()
	if reset {
		d.opts.Resumer.Resume(e.ID, 0)
	}
}

// Accepting reports whether the endpoint takes deliveries now (Room > 0).
func (d *Dispatcher) Accepting(endpointID string) bool { return d.Room(endpointID) > 0 }

// Room is how many parked deliveries the endpoint takes now: none while its
// circuit is open (or its probe is under way) or its queue is more than
// half full; one, the probe, while half-open; else what its queue has room
// for.
func (d *Dispatcher) Room(endpointID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h := d.health[endpointID]; h != nil && h.state != closed {
		if h.state == halfOpen && !h.probing {
			// The next delivery released becomes the probe (parks may
			// arrive after the cooldown's Resume).
			return 1
		}
		return 0
	}
	n := 0
	if l := d.lanes[endpointID]; l != nil {
		n = l.len()
	}
	if n > d.opts.QueueLimit/2 {
		return 0
	}
	return d.opts.QueueLimit - n
}

// Circuits returns the endpoints whose circuit is not closed, with its state.
func (d *Dispatcher) Circuits() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for id, h := range d.health {
		if h.state != closed {
			out[id] = h.state.String()
		}
	}
	return out
}
