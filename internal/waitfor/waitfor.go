// Package waitfor is how walhook's tests wait: on a condition, with a
// deadline, never by sleeping and hoping. It polls often at first (most
// conditions hold within milliseconds) and less often later.
package waitfor

import (
	"testing"
	"time"
)

// True polls cond until it holds, failing the test after within; what names
// the condition in the failure.
func True(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
