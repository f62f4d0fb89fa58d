package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walhook/walhook/internal/pgcluster"
)

const benchDB = "bench"

// pgSettings are the bench cluster's defaults: durable commits as in
// production (fsync and synchronous_commit on), and enough memory and WAL
// room that checkpoints and a cold cache do not dominate a short run.
// Config.PGSettings overrides them.
func pgSettings(extra map[string]string) map[string]string {
	s := map[string]string{
		"synchronous_commit":           "on",
		"shared_buffers":               "256MB",
		"wal_buffers":                  "16MB",
		"max_wal_size":                 "4GB",
		"checkpoint_timeout":           "30min",
		"checkpoint_completion_target": "0.9",
		"effective_cache_size":         "1GB",
		"log_min_messages":             "warning",
	}
	maps.Copy(s, extra)
	return s
}

// startPostgres starts a throwaway cluster in dir, its log in
// dir/postgres.log, and creates the bench database in it. stop shuts the
// server down and closes the log.
func startPostgres(ctx context.Context, dir string, settings map[string]string) (c *pgcluster.Cluster, stop func() error, err error) {
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, nil, fmt.Errorf("postgres log: %w", err)
	}
	c, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Settings: settings, Log: logf})
	if err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start postgres: %w", err)
	}
	// Immediate: the cluster is thrown away, a checkpoint would be wasted.
	stop = func() error {
		err := c.Stop("immediate")
		logf.Close()
		return err
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+benchDB)
		conn.Close(ctx)
	}
	if err != nil {
		_ = stop()
		return nil, nil, fmt.Errorf("create database %s: %w", benchDB, err)
	}
	return c, stop, nil
}

// tupleCounts are pg_stat_user_tables counters of one table.
type tupleCounts struct {
	Inserted int64 `json:"inserted"`
	Updated  int64 `json:"updated"`
	Deleted  int64 `json:"deleted"`
}

// pgSnapshot is the database's write activity at one moment.
type pgSnapshot struct {
	tables map[string]tupleCounts // "schema.table"
	walLSN int64                  // pg_current_wal_lsn as bytes
}

// snapshotPG reads the tuple counters of every user table (all schemas:
// the outbox in public, walhook's own tables in schema walhook) and the WAL
// position. Backends report their counters when they go idle or exit, so a
// final snapshot is taken after walhook and the producer have left.
func snapshotPG(ctx context.Context, dsn string, final bool) (pgSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return pgSnapshot{}, fmt.Errorf("postgres statistics: %w", err)
	}
	defer conn.Close(ctx)
	// A backend of a client that just left (walhook, the producer) reports
	// its counts on its way out, before it leaves pg_stat_activity: the
	// final snapshot waits for that, a little.
	for deadline := time.Now().Add(3 * time.Second); final && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var others int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&others); err != nil {
			return pgSnapshot{}, fmt.Errorf("postgres backends: %w", err)
		}
		if others == 0 {
			break
		}
	}
	snap := pgSnapshot{tables: map[string]tupleCounts{}}
	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables`)
	if err != nil {
		return pgSnapshot{}, fmt.Errorf("postgres statistics: %w", err)
	}
	for rows.Next() {
		var name string
		var t tupleCounts
		if err := rows.Scan(&name, &t.Inserted, &t.Updated, &t.Deleted); err != nil {
			return pgSnapshot{}, fmt.Errorf("postgres statistics: %w", err)
		}
		snap.tables[name] = t
	}
	if err := rows.Err(); err != nil {
		return pgSnapshot{}, fmt.Errorf("postgres statistics: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&snap.walLSN); err != nil {
		return pgSnapshot{}, fmt.Errorf("postgres WAL position: %w", err)
	}
	return snap, nil
}

// since is the activity between two snapshots, per table with any.
func (s pgSnapshot) since(before pgSnapshot) (map[string]tupleCounts, int64) {
	out := map[string]tupleCounts{}
	for name, t := range s.tables {
		b := before.tables[name]
		d := tupleCounts{Inserted: t.Inserted - b.Inserted, Updated: t.Updated - b.Updated, Deleted: t.Deleted - b.Deleted}
		if d != (tupleCounts{}) {
			out[name] = d
		}
	}
	return out, s.walLSN - before.walLSN
}

// execSQL runs one statement on its own connection.
func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// walToDecode is how many bytes of WAL the walsender has yet to read: what
// an event committed now waits behind before walhook can see it.
func walToDecode(ctx context.Context, dsn string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("walsender position: %w", err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(pg_current_wal_lsn() - sent_lsn), 0)::bigint FROM pg_stat_replication`).Scan(&n); err != nil {
		return 0, fmt.Errorf("walsender position: %w", err)
	}
	return n, nil
}
