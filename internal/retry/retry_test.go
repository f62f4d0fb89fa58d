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
