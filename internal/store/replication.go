package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Outbox names the app's outbox table and its columns. TenantID and
// CreatedAt may be empty when the table lacks them.
type Outbox struct {
	Schema, Table                               string
	ID, EventType, Payload, TenantID, CreatedAt string
}

func (o Outbox) ident() string { return pgx.Identifier{o.Schema, o.Table}.Sanitize() }

// EnsureOutbox creates the outbox table when it is absent and checks that an
// existing one has the configured columns.
func (s *Store) EnsureOutbox(ctx context.Context, o Outbox) error {
	var exists bool
	if err := s.outbox.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)`, o.Schema, o.Table).Scan(&exists); err != nil {
		return fmt.Errorf("look up outbox table: %w", err)
	}
	if !exists {
		cols := []string{
			pgx.Identifier{o.ID}.Sanitize() + " bigserial PRIMARY KEY",
			pgx.Identifier{o.EventType}.Sanitize() + " text NOT NULL",
			pgx.Identifier{o.Payload}.Sanitize() + " jsonb NOT NULL",
		}
		if o.TenantID != "" {
			cols = append(cols, pgx.Identifier{o.TenantID}.Sanitize()+" text")
		}
		if o.CreatedAt != "" {
			cols = append(cols, pgx.Identifier{o.CreatedAt}.Sanitize()+" timestamptz NOT NULL DEFAULT now()")
		}
		sql := "CREATE TABLE IF NOT EXISTS " + o.ident() + " (" + strings.Join(cols, ", ") + ")"
		if _, err := s.outbox.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create outbox table %s.%s: %w", o.Schema, o.Table, err)
		}
		return nil
	}
	rows, err := s.outbox.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, o.Schema, o.Table)
	if err != nil {
		return fmt.Errorf("read outbox columns: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read outbox columns: %w", err)
	}
	set := map[string]bool{}
	for _, c := range have {
		set[c] = true
	}
	for key, col := range map[string]string{"id": o.ID, "event_type": o.EventType, "payload": o.Payload, "tenant_id": o.TenantID, "created_at": o.CreatedAt} {
		if col != "" && !set[col] {
			return fmt.Errorf("outbox table %s.%s has no column %q (outbox.columns.%s): add it or point the setting at an existing column", o.Schema, o.Table, col, key)
		}
	}
	return nil
}

// EndpointsPublication is the publication carrying walhook's own changes
// (endpoints and signals), so they reach the stream in commit order with the
// events.
func EndpointsPublication(publication string) string { return publication + "_endpoints" }

// ownPublished are walhook's tables streamed through EndpointsPublication.
var ownPublished = []string{"endpoints", "signals"}

// EnsureReplication creates the publications (first: a slot does not see a
// publication created after it) and then the logical slot. Rows committed
// after the slot exists are streamed; earlier ones are not.
func (s *Store) EnsureReplication(ctx context.Context, slot, publication string, o Outbox) error {
	if err := s.ensurePublication(ctx, publication, "insert", [][2]string{{o.Schema, o.Table}}); err != nil {
		return err
	}
	own := make([][2]string, len(ownPublished))
	for i, t := range ownPublished {
		own[i] = [2]string{s.schema, t}
	}
	if err := s.ensurePublication(ctx, EndpointsPublication(publication), "insert, update, delete", own); err != nil {
		return err
	}
	var plugin, walStatus string
	err := s.outbox.QueryRow(ctx, `SELECT plugin, coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&plugin, &walStatus)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := s.outbox.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
			return fmt.Errorf("create replication slot %s: %w", slot, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("look up replication slot %s: %w", slot, err)
	case plugin != "pgoutput":
		return fmt.Errorf("replication slot %s exists with plugin %s, walhook needs pgoutput: drop it or set replication.slot to another name", slot, plugin)
	case walStatus == "lost":
		return fmt.Errorf("replication slot %s was invalidated by max_slot_wal_keep_size (its WAL is gone, events were lost): drop it with SELECT pg_drop_replication_slot('%s') and restart walhook, then re-emit what was missed", slot, slot)
	}
	return nil
}

// ensurePublication makes publication name publish exactly tables (schema,
// table pairs), creating it or pointing an existing one at them.
func (s *Store) ensurePublication(ctx context.Context, name, publish string, tables [][2]string) error {
	idents := make([]string, len(tables))
	for i, t := range tables {
		idents[i] = pgx.Identifier{t[0], t[1]}.Sanitize()
	}
	list := strings.Join(idents, ", ")
	var exists bool
	if err := s.outbox.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %s: %w", name, err)
	}
	pub := pgx.Identifier{name}.Sanitize()
	if !exists {
		sql := "CREATE PUBLICATION " + pub + " FOR TABLE " + list + " WITH (publish = '" + publish + "')"
		if _, err := s.outbox.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create publication %s: %w", name, err)
		}
		return nil
	}
	var covered int
	for _, t := range tables {
		var covers bool
		if err := s.outbox.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`, name, t[0], t[1]).Scan(&covers); err != nil {
			return fmt.Errorf("look up publication %s: %w", name, err)
		}
		if covers {
			covered++
		}
	}
	if covered < len(tables) {
		if _, err := s.outbox.Exec(ctx, "ALTER PUBLICATION "+pub+" SET TABLE "+list); err != nil {
			return fmt.Errorf("point publication %s at %s: %w", name, list, err)
		}
	}
	return nil
}

// Cursor returns the recorded stream position of slot (0 when none).
func (s *Store) Cursor(ctx context.Context, slot string) (uint64, error) {
	var lsn int64
	err := s.pool.QueryRow(ctx, `SELECT lsn FROM stream_cursors WHERE slot = $1`, slot).Scan(&lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read stream cursor of %s: %w", slot, err)
	}
	return uint64(lsn), nil
}

// ClaimCursor is Cursor for a stream about to start: it first checks that
// walhook's records belong to the outbox's server, and claims them for it on
// the first start. Event ids and the cursor are positions in one server's
// WAL. Records kept from another server (a state database shared by two
// installations, or kept while the outbox's server was restored or
// replaced by a standby that was behind) would make walhook skip
// transactions, or give new events the ids of old ones. With a state
// database of its own, it also refuses to leave behind unfinished
// deliveries recorded beside the outbox before database.state_url was set.
func (s *Store) ClaimCursor(ctx context.Context, slot string) (uint64, error) {
	var server string
	var current int64
	if err := s.outbox.QueryRow(ctx, `SELECT system_identifier::text, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
		FROM pg_control_system()`).Scan(&server, &current); err != nil {
		return 0, fmt.Errorf("identify the outbox's server: %w", err)
	}
	if s.split() {
		var left int
		if err := s.outbox.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE status IN ('pending', 'retrying')`).Scan(&left); err != nil {
			return 0, fmt.Errorf("look for deliveries left beside the outbox: %w", err)
		}
		if left > 0 {
			return 0, fmt.Errorf("the outbox's database still holds %d unfinished deliveries recorded before database.state_url was set, which walhook would no longer send: run it without database.state_url until none is pending or retrying, then set it", left)
		}
	}
	var lsn int64
	var owner string
	if err := s.pool.QueryRow(ctx, `INSERT INTO stream_cursors (slot, lsn, updated_at, server_id) VALUES ($1, 0, now(), $2)
		ON CONFLICT (slot) DO UPDATE SET server_id = coalesce(stream_cursors.server_id, excluded.server_id)
		RETURNING lsn, server_id`, slot, server).Scan(&lsn, &owner); err != nil {
		return 0, fmt.Errorf("claim the stream cursor of %s: %w", slot, err)
	}
	const remedy = "give walhook an empty state database (database.state_url) for this server, or, with one database, empty walhook's records (TRUNCATE walhook.events, walhook.deliveries, walhook.attempts, walhook.stream_cursors)"
	switch {
	case owner != server && lsn <= current:
		// A new cluster with the same data (pg_upgrade, a dump restored
		// into it) writes its WAL past every recorded position: walhook
		// could go on, but only the operator knows the old server is gone.
		return 0, fmt.Errorf("walhook's records for slot %s were streamed from the Postgres server with system identifier %s, and database.url is server %s: ids are positions in one server's WAL. If this server took over the same data in a new cluster (pg_upgrade, a dump restored into it) and the old one is gone, its WAL is past every recorded id: claim the records for it with UPDATE walhook.stream_cursors SET server_id = NULL WHERE slot = '%s'. Otherwise %s", slot, owner, server, slot, remedy)
	case owner != server:
		return 0, fmt.Errorf("walhook's records for slot %s were streamed from the Postgres server with system identifier %s, and database.url is server %s: ids are positions in one server's WAL, and this one's is behind them, so these records cannot go on from it; %s", slot, owner, server, remedy)
	case lsn > current:
		return 0, fmt.Errorf("walhook's cursor for slot %s (%s) is ahead of the outbox server's WAL (%s): the server was restored, or replaced by a standby that was behind, while walhook's records were kept; %s", slot, pglogrepl.LSN(lsn), pglogrepl.LSN(current), remedy)
	}
	return uint64(lsn), nil
}

// EmitHeartbeat writes a transactional logical message into the WAL so an
// idle outbox still gives the slot a position to confirm.
func (s *Store) EmitHeartbeat(ctx context.Context, prefix string) error {
	if _, err := s.outbox.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, '')`, prefix); err != nil {
		return fmt.Errorf("emit heartbeat: %w", err)
	}
	return nil
}

// WaitVisible waits until transaction xid, received committed from the
// stream, is visible to new snapshots. A commit reaches the WAL, and so the
// stream, a moment before the committing backend publishes it to other
// sessions: a read right after the change arrives can still see the row as
// it was. xid is the 32-bit id of the stream's Begin message; it is widened
// with the epoch of the current snapshot.
func (s *Store) WaitVisible(ctx context.Context, xid uint32) error {
	const q = `WITH s AS (SELECT pg_current_snapshot() AS snap, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax)
		SELECT pg_visible_in_snapshot((CASE WHEN (xmax >> 32 << 32 | $1::bigint) > xmax
			THEN ((xmax >> 32) - 1) << 32 | $1::bigint ELSE xmax >> 32 << 32 | $1::bigint END)::text::xid8, snap) FROM s`
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 50*time.Millisecond) {
		var visible bool
		if err := s.outbox.QueryRow(ctx, q, int64(xid)).Scan(&visible); err != nil {
			return fmt.Errorf("wait for transaction %d to be visible: %w", xid, err)
		}
		if visible {
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
