package scheduler_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/pgtest"
)

// TestMain fails a green run that leaves goroutines of the package's
// components behind.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if code == 0 {
		if leaked := leakedGoroutines("scheduler.(*Scheduler).", "delivery.(*Dispatcher).", "recorder.(*Recorder)."); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines running a function
// named by one of markers, once they have had 5 seconds to end.
func leakedGoroutines(markers ...string) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, m := range markers {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
