// Package leakcheck fails a test binary whose passing tests leave goroutines
// of the components under test running: a goroutine without an owner that
// stops it is a bug even when every assertion held.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Main runs the tests with run (m.Run, or pgtest.Main(m)) and, when they
// passed, waits up to wait for every goroutine whose stack mentions one of
// markers to end. Survivors are printed and fail the run. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m.Run, 5*time.Second, "delivery.(*Dispatcher).")) }
func Main(run func() int, wait time.Duration, markers ...string) int {
	code := run()
	if code != 0 {
		return code
	}
	if leaked := Leaked(wait, markers...); leaked != "" {
		fmt.Fprintf(os.Stderr, "goroutines still running after the tests:\n\n%s\n", leaked)
		return 1
	}
	return 0
}

// Leaked returns the stacks of goroutines mentioning one of markers that are
// still running after wait, or "" when none is.
func Leaked(wait time.Duration, markers ...string) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		// The first stack is the caller's own goroutine.
		_, others, _ := strings.Cut(string(buf), "\n\n")
		var leaked []string
		for g := range strings.SplitSeq(others, "\n\n") {
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
