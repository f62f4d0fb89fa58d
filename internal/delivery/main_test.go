package delivery_test

import (
	"os"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/leakcheck"
)

// TestMain fails a green run that leaves goroutines of the package's
// components behind.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Main(m.Run, 5*time.Second, "delivery.(*Dispatcher)."))
}
