// Command walhook streams a Postgres outbox through logical replication and
// delivers it as signed webhooks. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/walhook/walhook/internal/cli"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// walhook's live heap is small and its garbage is per request: a
		// heap three times the live one halves the collector's CPU for a
		// few tens of MB. GOGC and GOMEMLIMIT, when set, decide instead.
		debug.SetGCPercent(200)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
