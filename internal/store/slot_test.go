package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walhook/walhook/internal/store"
)

func TestSlotStatsMeasuresLagRetentionAndActivity(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	ob := store.Outbox{Schema: "public", Table: "webhook_outbox", ID: "id", EventType: "event_type", Payload: "payload", TenantID: "tenant_id", CreatedAt: "created_at"}
	if err := s.EnsureOutbox(ctx, ob); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureReplication(ctx, "walhook_slot", "walhook", ob); err != nil {
		t.Fatal(err)
	}

	if _, err := s.SlotStats(ctx, "no_such_slot"); !errors.Is(err, store.ErrSlotNotFound) {
		t.Fatalf("SlotStats of a missing slot: err = %v, want ErrSlotNotFound", err)
	}

	before, err := s.SlotStats(ctx, "walhook_slot")
	if err != nil {
		t.Fatal(err)
	}
	if before.Slot != "walhook_slot" || before.Active || before.ConfirmedFlushLSN == 0 || before.RestartLSN == 0 ||
		before.CurrentLSN < before.ConfirmedFlushLSN || before.LagBytes < 0 || before.RetainedWALBytes < before.LagBytes {
		t.Fatalf("fresh slot stats = %+v", before)
	}
	if before.WALStatus != "reserved" {
		t.Fatalf("wal_status = %q, want reserved", before.WALStatus)
	}
	if got := int64(before.CurrentLSN - before.ConfirmedFlushLSN); got != before.LagBytes {
		t.Fatalf("lag bytes %d != current - confirmed = %d", before.LagBytes, got)
	}

	// Nobody consumes the slot: WAL written now is lag, and retained.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload) SELECT 'order.created', jsonb_build_object('n', g, 'pad', repeat('x', 200)) FROM generate_series(1, 2000) g`); err != nil {
		t.Fatal(err)
	}
	grown, err := s.SlotStats(ctx, "walhook_slot")
	if err != nil {
		t.Fatal(err)
	}
	if grown.ConfirmedFlushLSN != before.ConfirmedFlushLSN {
		t.Fatalf("confirmed position moved without a consumer: %d -> %d", before.ConfirmedFlushLSN, grown.ConfirmedFlushLSN)
	}
	if grown.LagBytes < before.LagBytes+400_000 || grown.RetainedWALBytes < grown.LagBytes {
		t.Fatalf("after ~500 kB of WAL: lag %d -> %d, retained %d", before.LagBytes, grown.LagBytes, grown.RetainedWALBytes)
	}

	// A consumer connects: the slot is active.
	conn := replicationConn(t, s.DSN())
	err = pglogrepl.StartReplication(ctx, conn, "walhook_slot", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'walhook'"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitSlot(t, s, "active", func(st store.SlotStats) bool { return st.Active })
	conn.Close(ctx)
	waitSlot(t, s, "inactive after the consumer left", func(st store.SlotStats) bool { return !st.Active })

	// Confirming the current position removes the lag.
	if _, err := s.Pool().Exec(ctx, `SELECT pg_replication_slot_advance('walhook_slot', pg_current_wal_lsn())`); err != nil {
		t.Fatal(err)
	}
	caught, err := s.SlotStats(ctx, "walhook_slot")
	if err != nil {
		t.Fatal(err)
	}
	if caught.ConfirmedFlushLSN <= grown.ConfirmedFlushLSN || caught.LagBytes >= grown.LagBytes {
		t.Fatalf("after advancing: confirmed %d -> %d, lag %d -> %d", grown.ConfirmedFlushLSN, caught.ConfirmedFlushLSN, grown.LagBytes, caught.LagBytes)
	}
}

func replicationConn(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func waitSlot(t *testing.T, s *store.Store, what string, cond func(store.SlotStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.SlotStats(context.Background(), "walhook_slot")
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not %s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
