package app_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/pgcluster"
)

func TestEmbeddedDefaultStartsLogicalPostgresAndIsFoundAgain(t *testing.T) {
	cfg := config.Defaults()
	dir := t.TempDir()
	// t.TempDir is private to its creator; the postgres user must traverse it
	// when the tests run as root.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Database.DataDir = filepath.Join(dir, "walhook", "pg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dsn, stop, err := app.Database(ctx, &cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil || level != "logical" {
		t.Fatalf("wal_level = %q, %v", level, err)
	}
	conn.Close(ctx)
	// A second command (walhook endpoint …) reaches the running server.
	if port, ok := pgcluster.Running(cfg.Database.DataDir); !ok || pgcluster.DSNForPort(port, "postgres") != dsn {
		t.Fatalf("Running = %d, %v; want the server at %s", port, ok, dsn)
	}
	dsn2, stop2, err := app.Database(ctx, &cfg, log)
	if err != nil || dsn2 != dsn {
		t.Fatalf("second Database() = %s, %v", dsn2, err)
	}
	stop2()
	if _, err := app.Prepare(ctx, &cfg, dsn, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate the embedded database: %v", err)
	}
}
