package waitfor_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/waitfor"
)

func TestTrueReturnsOnceTheConditionHolds(t *testing.T) {
	start := time.Now()
	waitfor.True(t, "30ms to pass", time.Second, func() bool { return time.Since(start) > 30*time.Millisecond })
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Fatalf("returned after %s for a condition that held after 30ms", took)
	}
}

func TestTrueFailsAtTheDeadline(t *testing.T) {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitfor.True(rec, "never", 20*time.Millisecond, func() bool { return false })
	}()
	<-done
	if !rec.failed {
		t.Fatal("a condition that never holds did not fail the test")
	}
}

// recorder catches Fatalf, which ends its goroutine like the real one.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}
