// Command walhook streams a Postgres outbox through logical replication and
// delivers it as signed webhooks. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/walhook/walhook/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
