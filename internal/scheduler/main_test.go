package scheduler_test

import (
	"os"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/leakcheck"
	"github.com/walhook/walhook/internal/pgtest"
)

// TestMain fails a green run that leaves goroutines of the package's
// components behind.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Main(func() int { return pgtest.Main(m) }, 5*time.Second, "scheduler.(*Scheduler).", "delivery.(*Dispatcher).", "recorder.(*Recorder)."))
}
