package delivery

import (
	"errors"
	"time"
)

// ErrStopped is returned by Send once the dispatcher is stopping.
var ErrStopped = errors.New("delivery: dispatcher stopped")

// Send makes one attempt of j now and returns its result, bypassing the
// endpoint's lane, circuit breaker and health: it is for requests a person
// asked for (an endpoint's test event), not for the stream's deliveries.
// It signs, dials and reads the answer exactly like a queued attempt (same
// client, network policy, redirects refused, timeout). The attempt counts in
// the metrics, and the result says delivered or failed: j.MaxAttempts is
// taken as 1, so nothing is scheduled. Nothing is handed to the Sink; the
// caller records the result.
func (d *Dispatcher) Send(j *Job) (Result, error) {
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if stopped {
		return Result{}, ErrStopped
	}
	job := *j
	job.Attempt, job.MaxAttempts, job.CommitTime = 1, 1, time.Time{}
	out := d.attempt(&job)
	if out.interrupted {
		return Result{}, ErrStopped
	}
	return out.Result, nil
}
