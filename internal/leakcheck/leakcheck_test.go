package leakcheck_test

import (
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/leakcheck"
)

func parkForever(started chan<- struct{}, stop <-chan struct{}) {
	close(started)
	<-stop
}

// park starts parkForever and returns once it runs: a goroutine not yet
// started shows in stacks under its creator's name, not its own.
func park(stop <-chan struct{}) {
	started := make(chan struct{})
	go parkForever(started, stop)
	<-started
}

func TestLeakedFindsARunningGoroutineAndForgetsAnEndedOne(t *testing.T) {
	stop := make(chan struct{})
	park(stop)
	if got := leakcheck.Leaked(50*time.Millisecond, "leakcheck_test.parkForever"); !strings.Contains(got, "parkForever") {
		t.Fatalf("a running goroutine was not reported: %q", got)
	}
	close(stop)
	if got := leakcheck.Leaked(5*time.Second, "leakcheck_test.parkForever"); got != "" {
		t.Fatalf("an ended goroutine was reported:\n%s", got)
	}
	// The caller's own goroutine never counts, whatever its stack holds.
	if got := leakcheck.Leaked(0, "TestLeakedFindsARunningGoroutine"); got != "" {
		t.Fatalf("the calling goroutine was reported:\n%s", got)
	}
}

func TestMainFailsAPassingRunThatLeaks(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	park(stop)
	if code := leakcheck.Main(func() int { return 0 }, 50*time.Millisecond, "leakcheck_test.parkForever"); code != 1 {
		t.Fatalf("Main = %d for a leaking run, want 1", code)
	}
	if code := leakcheck.Main(func() int { return 3 }, 0, "leakcheck_test.parkForever"); code != 3 {
		t.Fatalf("Main = %d for a failing run, want its own code 3", code)
	}
}
