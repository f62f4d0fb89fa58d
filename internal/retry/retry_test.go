package retry_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/retry"
)

var seeds = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour}

func TestNextFollowsTheSchedule(t *testing.T) {
	p := retry.Policy{Schedule: seeds, MaxAttempts: 5}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		failed int
		want   time.Duration
		ok     bool
	}{
		{1, time.Minute, true},
		{2, 5 * time.Minute, true},
		{3, 30 * time.Minute, true},
		{4, 2 * time.Hour, true},
		{5, 0, false},
		{9, 0, false},
	}
	for _, tt := range tests {
		at, ok := p.Next(tt.failed, now, nil)
		if ok != tt.ok || (ok && at.Sub(now) != tt.want) {
			t.Errorf("after %d failures: %v, %v; want +%v, %v", tt.failed, at.Sub(now), ok, tt.want, tt.ok)
		}
	}
	long := retry.Policy{Schedule: seeds[:2], MaxAttempts: 10}
	if at, ok := long.Next(7, now, nil); !ok || at.Sub(now) != 5*time.Minute {
		t.Errorf("last delay does not repeat: %v %v", at.Sub(now), ok)
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	p := retry.Policy{Schedule: seeds, MaxAttempts: 5, Jitter: 0.2}
	rnd := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	lo, hi := time.Hour, time.Duration(0)
	for i := 0; i < 10000; i++ {
		at, _ := p.Next(1, now, rnd)
		d := at.Sub(now)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 48*time.Second || hi > 72*time.Second {
		t.Fatalf("jittered 1m delay ranged %v..%v, want within 48s..72s", lo, hi)
	}
	if hi-lo < 20*time.Second {
		t.Fatalf("jitter too narrow: %v..%v", lo, hi)
	}
	if p.Longest() != 12*time.Hour {
		t.Fatal(p.Longest())
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name         string
		code         int
		clientErrors bool
		want         bool
	}{
		{"no response", 0, false, true},
		{"server error", 500, false, true},
		{"unavailable", 503, false, true},
		{"redirect is not followed, so retried", 302, false, true},
		{"client error, seeds' default retries it", 400, true, true},
		{"client error, no-retry-on-4xx policy", 400, false, false},
		{"unauthorized, no-retry-on-4xx policy", 401, false, false},
		{"request timeout is always retried", 408, false, true},
		{"conflict is always retried", 409, false, true},
		{"too early is always retried", 425, false, true},
		{"too many requests is always retried", 429, false, true},
		{"gone is never retried", 410, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := retry.Policy{Schedule: seeds, MaxAttempts: 5, RetryClientErrors: tt.clientErrors}
			if got := p.Retryable(tt.code); got != tt.want {
				t.Errorf("Retryable(%d) with RetryClientErrors=%v = %v, want %v", tt.code, tt.clientErrors, got, tt.want)
			}
		})
	}
}
