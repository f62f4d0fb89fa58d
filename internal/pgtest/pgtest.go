// Package pgtest gives tests real PostgreSQL databases with wal_level=logical.
//
// One throwaway cluster (from the system's binaries, on a free loopback port,
// in a temporary directory) serves a whole test binary; every call to New
// creates a fresh database in it, so tests are isolated and may run in
// parallel. Tests that restart or kill the server take a private cluster with
// NewCluster. Packages using New must route their TestMain through Main, which
// stops the shared cluster and removes its directory when the tests end.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walhook/walhook/internal/pgcluster"
)

// testSettings trade durability for speed: a test cluster never survives a
// machine crash. Tests that measure durability use NewCluster with their own
// settings.
var testSettings = map[string]string{
	"fsync":              "off",
	"full_page_writes":   "off",
	"synchronous_commit": "on",
	"shared_buffers":     "64MB",
	"log_min_messages":   "warning",
}

type shared struct {
	once    sync.Once
	cluster *pgcluster.Cluster
	dir     string
	err     error
	seq     atomic.Int64
}

// The shared cluster belongs to the test binary: Main owns its lifetime.
var cluster shared

// Main runs the tests and then stops the shared cluster. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if cluster.cluster != nil {
		_ = cluster.cluster.Stop("immediate")
	}
	if cluster.dir != "" {
		os.RemoveAll(cluster.dir)
	}
	return code
}

// DB is one fresh database in the shared cluster.
type DB struct {
	Name string
	DSN  string
	// Cluster is shared with other tests: do not stop or restart it.
	Cluster *pgcluster.Cluster
}

// New creates an empty database for the test and drops it afterwards.
func New(t testing.TB) *DB {
	t.Helper()
	cluster.once.Do(func() {
		cluster.dir, cluster.err = tempDir("walhook-pgtest-")
		if cluster.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster.cluster, cluster.err = pgcluster.Start(ctx, pgcluster.Options{
			DataDir:  filepath.Join(cluster.dir, "data"),
			Settings: testSettings,
		})
	})
	if cluster.err != nil {
		t.Fatalf("pgtest: start shared cluster: %v", cluster.err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), cluster.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec(ctx, t, cluster.cluster.DSN("postgres"), "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Slots pin the database; drop them first, then the database itself.
		conn, err := pgx.Connect(ctx, cluster.cluster.DSN("postgres"))
		if err != nil {
			t.Logf("pgtest: cleanup %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name)
		_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, name)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return &DB{Name: name, DSN: cluster.cluster.DSN(name), Cluster: cluster.cluster}
}

// NewCluster starts a private cluster the test may stop, restart or crash.
// Settings override the defaults (fsync stays on unless the test says so).
func NewCluster(t testing.TB, settings map[string]string) *pgcluster.Cluster {
	t.Helper()
	dir, err := tempDir("walhook-pgtest-own-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "data"), Settings: settings})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("pgtest: start private cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop("immediate"); err != nil {
			t.Logf("pgtest: stop private cluster: %v", err)
		}
		os.RemoveAll(dir)
	})
	return c
}

// Connect opens a connection to dsn, failing the test if it cannot; the
// caller closes it (helpers polled in a loop must not pile connections up
// until the test ends).
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	return conn
}

// Exec runs statements against dsn, failing the test on error.
func Exec(t testing.TB, dsn string, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec(ctx, t, dsn, sql, args...)
}

func exec(ctx context.Context, t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	conn := Connect(t, dsn)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// tempDir makes a directory the postgres user can traverse when tests run as
// root (MkdirTemp's 0700 would lock it out).
func tempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}
