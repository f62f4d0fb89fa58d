// Package retry is walhook's retry policy: when the next attempt of a failed
// delivery is due. It is a pure function of the attempt count, the time and
// a random source, so it is tested without clocks or sleeps.
package retry

import (
	"math/rand/v2"
	"time"
)

// Policy is a retry schedule. The original design's is 1m, 5m, 30m, 2h, 12h
// with 5 attempts in all.
type Policy struct {
	// Schedule[i] is the delay after the (i+1)th failed attempt; the last
	// delay repeats when MaxAttempts exceeds the schedule.
	Schedule    []time.Duration
	MaxAttempts int
	// Jitter spreads each delay uniformly by ±Jitter (0.2 = ±20%) so that
	// deliveries failing together do not retry together.
	Jitter float64
	// RetryClientErrors retries 4xx answers like server errors, as the
	// original design does. Off, a 4xx fails the delivery at once, except
	// 408, 409, 425 and 429, which say "try again later" and are retried.
	RetryClientErrors bool
}

// Retryable reports whether a failed attempt that got this status code (0:
// no response) may be retried. 410 Gone never is: the endpoint is gone.
func (p Policy) Retryable(code int) bool {
	switch {
	case code == 410:
		return false
	case code == 408, code == 409, code == 425, code == 429:
		return true
	case code >= 400 && code < 500:
		return p.RetryClientErrors
	default:
		return true
	}
}

// Next returns when attempt number failed+1 is due, after failed attempts
// have failed; ok is false when no attempt is left.
func (p Policy) Next(failed int, now time.Time, rnd *rand.Rand) (at time.Time, ok bool) {
	if failed >= p.MaxAttempts || len(p.Schedule) == 0 {
		return time.Time{}, false
	}
	i := min(failed-1, len(p.Schedule)-1)
	i = max(i, 0)
	return now.Add(p.jitter(p.Schedule[i], rnd)), true
}

func (p Policy) jitter(d time.Duration, rnd *rand.Rand) time.Duration {
	if p.Jitter <= 0 || rnd == nil {
		return d
	}
	f := 1 + p.Jitter*(2*rnd.Float64()-1)
	return time.Duration(float64(d) * f)
}

// Longest is the longest delay of the schedule (the cap for Retry-After).
func (p Policy) Longest() time.Duration {
	var m time.Duration
	for _, d := range p.Schedule {
		m = max(m, d)
	}
	return m
}
