package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrSlotNotFound is returned by SlotStats when the replication slot does
// not exist (dropped by hand, or not created yet).
var ErrSlotNotFound = errors.New("replication slot not found")

// SlotStats is what Postgres says about one replication slot, measured
// against the server's current WAL position (the replay position on a
// standby). LSNs are WAL byte positions; the byte counts are never negative.
type SlotStats struct {
	Slot string
	// Active is true while a consumer (walhook's stream) is connected.
	Active bool
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved or lost ("" when Postgres does not say).
	WALStatus string
	// ConfirmedFlushLSN is the position walhook last confirmed: everything
	// before it is recorded in walhook's tables.
	ConfirmedFlushLSN uint64
	// RestartLSN is the oldest WAL position the slot keeps on disk.
	RestartLSN uint64
	// CurrentLSN is the server's WAL position at the time of the query.
	CurrentLSN uint64
	// LagBytes is CurrentLSN - ConfirmedFlushLSN: WAL written that walhook
	// has not confirmed yet.
	LagBytes int64
	// RetainedWALBytes is CurrentLSN - RestartLSN: WAL the slot keeps from
	// being recycled.
	RetainedWALBytes int64
}

// slotStatsSQL reads one slot. LSN arithmetic is done by Postgres
// (pg_wal_lsn_diff gives numeric byte counts); NULL positions (a slot whose
// WAL was lost, a physical slot) count as 0 and never make a negative lag.
const slotStatsSQL = `
WITH cur AS (
  SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn
)
SELECT s.active,
       coalesce(s.wal_status, ''),
       coalesce(pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0'), 0)::bigint,
       coalesce(pg_wal_lsn_diff(s.restart_lsn, '0/0'), 0)::bigint,
       coalesce(pg_wal_lsn_diff(cur.lsn, '0/0'), 0)::bigint,
       greatest(coalesce(pg_wal_lsn_diff(cur.lsn, s.confirmed_flush_lsn), 0), 0)::bigint,
       greatest(coalesce(pg_wal_lsn_diff(cur.lsn, s.restart_lsn), 0), 0)::bigint
FROM pg_replication_slots s CROSS JOIN cur
WHERE s.slot_name = $1`

// SlotStats reads the state of a replication slot from pg_replication_slots
// and the server's current WAL position, in one query. It returns an error
// wrapping ErrSlotNotFound when the slot does not exist.
func (s *Store) SlotStats(ctx context.Context, slot string) (SlotStats, error) {
	st := SlotStats{Slot: slot}
	var confirmed, restart, current int64
	err := s.outbox.QueryRow(ctx, slotStatsSQL, slot).Scan(&st.Active, &st.WALStatus, &confirmed, &restart, &current, &st.LagBytes, &st.RetainedWALBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("%w: %s", ErrSlotNotFound, slot)
	}
	if err != nil {
		return st, fmt.Errorf("read replication slot %s: %w", slot, err)
	}
	st.ConfirmedFlushLSN, st.RestartLSN, st.CurrentLSN = uint64(confirmed), uint64(restart), uint64(current)
	return st, nil
}
