// Package store is the only place walhook speaks SQL: its schema (embedded,
// versioned migrations), the outbox table and replication objects it sets up,
// endpoint management, and the batched writes that record events, deliveries
// and attempts.
//
// walhook's tables live in their own schema (database.schema); every pooled
// connection has search_path set to it, so queries use unqualified names.
// Names that come from configuration (schema, outbox table and columns,
// publication, slot) are validated identifiers and are always quoted with
// pgx.Identifier; values are always bind parameters.
//
// The store may span two databases. The outbox's database holds the outbox,
// the publications and slot, and walhook's endpoints and signals, whose
// changes the stream reads in commit order with the events. The state
// database holds what walhook records at the rate of deliveries: events,
// deliveries, attempts, dead letters and the stream's cursor. On a server of
// its own, those writes stay out of the outbox server's WAL, which its
// walsender reads in full whatever the database. Both databases get the
// whole schema; each table is only used in one. With one database, both
// are the same pool.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is walhook's handle on its databases.
type Store struct {
	// pool is the state database's; outbox the outbox's database's. They
	// are the same pool when there is one database.
	pool   *pgxpool.Pool
	outbox *pgxpool.Pool
	schema string
	dsn    string
	// copyBuffers holds *copyData buffers for batches written by COPY.
	copyBuffers sync.Pool
}

// Open connects a pool whose connections use schema as search_path, for one
// database holding the outbox and walhook's state.
func Open(ctx context.Context, dsn, schema string, maxConns int) (*Store, error) {
	return OpenSplit(ctx, dsn, "", schema, maxConns)
}

// OpenSplit is Open with walhook's state in the database of stateDSN, when
// it is neither empty nor the outbox's database (however its URL is spelt).
func OpenSplit(ctx context.Context, dsn, stateDSN, schema string, maxConns int) (*Store, error) {
	outbox, err := openPool(ctx, dsn, schema, maxConns)
	if err != nil {
		return nil, err
	}
	st := &Store{pool: outbox, outbox: outbox, schema: schema, dsn: dsn}
	if stateDSN == "" || stateDSN == dsn {
		return st, nil
	}
	state, err := openPool(ctx, stateDSN, schema, maxConns)
	if err != nil {
		outbox.Close()
		return nil, fmt.Errorf("state database: %w", err)
	}
	// Two pools over one database would split what must be one
	// transaction (a retry and its signal), and take walhook's own
	// unfinished deliveries for ones left behind beside the outbox.
	var ids [2]string
	for i, p := range []*pgxpool.Pool{outbox, state} {
		if err := p.QueryRow(ctx, `SELECT system_identifier::text || '/' || pg_postmaster_start_time()::text || '/' || current_database()
			FROM pg_control_system()`).Scan(&ids[i]); err != nil {
			outbox.Close()
			state.Close()
			return nil, fmt.Errorf("identify the databases: %w", err)
		}
	}
	if ids[0] == ids[1] {
		state.Close()
		return st, nil
	}
	st.pool = state
	return st, nil
}

func openPool(ctx context.Context, dsn, schema string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cfg.MaxConns = int32(maxConns)
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize() + ", public"
	cfg.ConnConfig.RuntimeParams["application_name"] = "walhook"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}

// split reports whether the state has a database of its own.
func (s *Store) split() bool { return s.pool != s.outbox }

// pools are the store's distinct pools: the outbox's first.
func (s *Store) pools() []*pgxpool.Pool {
	if s.split() {
		return []*pgxpool.Pool{s.outbox, s.pool}
	}
	return []*pgxpool.Pool{s.pool}
}

// Close closes the pools.
func (s *Store) Close() {
	for _, p := range s.pools() {
		p.Close()
	}
}

// Pool is the state database's pool, for tests of the store's callers.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// OutboxPool is the outbox's database's pool (endpoints, signals), for tests
// of the store's callers. It is Pool with one database.
func (s *Store) OutboxPool() *pgxpool.Pool { return s.outbox }

// Schema is the schema of walhook's tables.
func (s *Store) Schema() string { return s.schema }

// DSN is the connection string of the outbox's database: the one the
// stream replicates from.
func (s *Store) DSN() string { return s.dsn }

// Ping checks that the databases answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.outbox.Ping(ctx); err != nil {
		return err
	}
	if s.split() {
		if err := s.pool.Ping(ctx); err != nil {
			return fmt.Errorf("state database: %w", err)
		}
	}
	return nil
}

// CheckPrerequisites verifies what logical replication needs and says
// exactly what to change when something is missing.
func (s *Store) CheckPrerequisites(ctx context.Context) error {
	var walLevel string
	if err := s.outbox.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return fmt.Errorf("postgres has wal_level=%s but walhook needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf / your provider's parameter group, e.g. rds.logical_replication=1) and restart postgres", walLevel)
	}
	var replication, superuser bool
	var role string
	if err := s.outbox.QueryRow(ctx, "SELECT rolname, rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&role, &replication, &superuser); err != nil {
		return fmt.Errorf("read role attributes: %w", err)
	}
	if !replication && !superuser {
		return fmt.Errorf("role %q lacks the REPLICATION privilege walhook needs to stream the outbox: run ALTER ROLE %s WITH REPLICATION as a superuser", role, pgx.Identifier{role}.Sanitize())
	}
	var slots int
	if err := s.outbox.QueryRow(ctx, "SELECT current_setting('max_replication_slots')::int").Scan(&slots); err != nil {
		return fmt.Errorf("read max_replication_slots: %w", err)
	}
	if slots < 1 {
		return errors.New("postgres has max_replication_slots=0: set it to at least 1 (and max_wal_senders to at least 1) and restart postgres")
	}
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", name)
		}
		body, err := fs.ReadFile(migrations, "migrations/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrationLock is the advisory lock key serialising concurrent migrators.
const migrationLock = 0x77616c686f6f6b // "walhook"

// Migrate creates or upgrades walhook's schema, in each database. It is safe
// to run concurrently and repeatedly.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	for _, p := range s.pools() {
		if err := s.migrate(ctx, p, ms); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck // released with the session anyway
	schema := pgx.Identifier{s.schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("migrate: create schema %s: %w", s.schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

// MigrationsApplied reports whether every embedded migration is applied, in
// each database.
func (s *Store) MigrationsApplied(ctx context.Context) (bool, error) {
	ms, err := loadMigrations()
	if err != nil {
		return false, err
	}
	for _, p := range s.pools() {
		if ok, err := migrationsApplied(ctx, p, ms); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

func migrationsApplied(ctx context.Context, pool *pgxpool.Pool, ms []migration) (bool, error) {
	var n int
	err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ANY($1)", versions(ms)).Scan(&n)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read schema_migrations: %w", err)
	}
	return n == len(ms), nil
}

func versions(ms []migration) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.version
	}
	return out
}

// queryAll runs a query and scans every row with scan; what names the
// operation in errors.
func queryAll[T any](ctx context.Context, pool *pgxpool.Pool, what, sql string, args []any, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
