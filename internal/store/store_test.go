package store_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T) *store.Store { return openAt(t, 0) }

// openAt opens a store in a new database migrated up to version (0: all).
func openAt(t *testing.T, version int) *store.Store {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	s, err := store.Open(ctx, db.DSN, "walhook", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	migrate := s.Migrate
	if version > 0 {
		migrate = func(ctx context.Context) error { return s.MigrateUpTo(ctx, version) }
	}
	if err := migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateIsIdempotentAndReported(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	ok, err := s.MigrationsApplied(ctx)
	if err != nil || !ok {
		t.Fatalf("MigrationsApplied = %v, %v", ok, err)
	}
}

func TestEnsureReplicationCreatesPublicationsThenSlot(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	ob := store.Outbox{Schema: "public", Table: "webhook_outbox", ID: "id", EventType: "event_type", Payload: "payload", TenantID: "tenant_id", CreatedAt: "created_at"}
	if err := s.EnsureOutbox(ctx, ob); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := s.EnsureReplication(ctx, "walhook_t", "walhook", ob); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_publication_tables WHERE pubname IN ('walhook', 'walhook_endpoints')`).Scan(&n); err != nil || n != 3 { // outbox; endpoints and signals
		t.Fatalf("publication tables = %d, %v", n, err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walhook_t' AND plugin = 'pgoutput'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("slots = %d, %v", n, err)
	}
	missing := ob
	missing.TenantID = "customer"
	if err := s.EnsureOutbox(ctx, missing); err == nil {
		t.Fatal("EnsureOutbox accepted a table without the configured tenant column")
	}
}

func TestWriteBatchRecordsAndUpdates(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	b := &store.Batch{
		Events: []store.Event{{ID: "evt_1", Type: "order.created", Payload: []byte(`{"a":1}`), LSN: 100, CreatedAt: now, ReceivedAt: now}},
		Deliveries: []store.Delivery{
			{ID: "d1", EndpointID: "ep_a", EventID: "evt_1", EventType: "order.created", Status: store.StatusPending, MaxAttempts: 5, CreatedAt: now, UpdatedAt: now},
			{ID: "d2", EndpointID: "ep_b", EventID: "evt_1", EventType: "order.created", Status: store.StatusDelivered, Attempts: 1, MaxAttempts: 5, LastStatusCode: 200, CreatedAt: now, UpdatedAt: now, DeliveredAt: now},
		},
		Attempts:   []store.Attempt{{DeliveryID: "d2", Attempt: 1, EndpointID: "ep_b", StartedAt: now, Duration: time.Millisecond, StatusCode: 200, Response: "ok"}},
		EventTypes: []string{"order.created"},
		Slot:       "s", Cursor: 120,
	}
	if err := s.WriteBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	retryAt := now.Add(time.Minute)
	if err := s.WriteBatch(ctx, &store.Batch{
		Updates:  []store.Delivery{{ID: "d1", Status: store.StatusRetrying, Attempts: 1, NextRetryAt: retryAt, LastStatusCode: 500, LastResponse: "boom", UpdatedAt: now}},
		Attempts: []store.Attempt{{DeliveryID: "d1", Attempt: 1, EndpointID: "ep_a", StartedAt: now, StatusCode: 500, Response: "boom"}},
		Slot:     "s", Cursor: 110, // older: must not move the cursor back
	}); err != nil {
		t.Fatal(err)
	}
	d1, err := s.GetDelivery(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if d1.Status != store.StatusRetrying || d1.Attempts != 1 || !d1.NextRetryAt.Equal(retryAt) || d1.LastStatusCode != 500 || d1.LastResponse != "boom" {
		t.Fatalf("d1 after update = %+v", d1)
	}
	if c, err := s.Cursor(ctx, "s"); err != nil || c != 120 {
		t.Fatalf("cursor = %d, %v; want 120", c, err)
	}
	var unfinished []string
	if err := s.ScanUnfinished(ctx, func(sd store.ScheduledDelivery) error { unfinished = append(unfinished, sd.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(unfinished) != 1 || unfinished[0] != "d1" {
		t.Fatalf("unfinished = %v", unfinished)
	}
	due, err := s.LoadDue(ctx, []string{"d1", "d2"}, retryAt)
	if err != nil {
		t.Fatal(err)
	}
	// The payload comes back byte for byte, as the outbox held it.
	if len(due) != 1 || due[0].ID != "d1" || string(due[0].Payload) != `{"a":1}` {
		t.Fatalf("due = %+v", due)
	}
	if due, _ := s.LoadDue(ctx, []string{"d1"}, now); len(due) != 0 {
		t.Fatal("LoadDue returned a delivery before its retry time")
	}
	list, err := s.ListDeliveries(ctx, store.DeliveryFilter{EndpointID: "ep_b", Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != "d2" {
		t.Fatalf("list = %v, %v", list, err)
	}
}

func TestWaitVisibleWaitsForTheTransactionToCommit(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT txid_current() % 4294967296`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := s.WaitVisible(short, uint32(xid)); err == nil {
		t.Fatal("WaitVisible returned while the transaction was still open")
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitVisible(ctx, uint32(xid)) }()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitVisible did not return after the commit")
	}
}

func TestAFirstAttemptKeptOnTheDeliveryIsInTheLogAndSurvivesARetry(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.WriteBatch(ctx, &store.Batch{
		Events: []store.Event{{ID: "evt_1", Type: "order.created", Payload: []byte(`{}`), LSN: 1, CreatedAt: now, ReceivedAt: now}},
		Deliveries: []store.Delivery{{ID: "d1", EndpointID: "ep_a", EventID: "evt_1", EventType: "order.created",
			Status: store.StatusDelivered, Attempts: 1, MaxAttempts: 5, LastStatusCode: 200, LastResponse: "first",
			CreatedAt: now, UpdatedAt: now, DeliveredAt: now, LastAttemptAt: now, LastDuration: 1500 * time.Microsecond}},
	}); err != nil {
		t.Fatal(err)
	}
	rows := func() int {
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM attempts WHERE delivery_id = 'd1'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	log := func() []store.Attempt {
		atts, err := s.ListAttempts(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		return atts
	}
	first := store.Attempt{DeliveryID: "d1", Attempt: 1, EndpointID: "ep_a", StartedAt: now, Duration: 1500 * time.Microsecond, StatusCode: 200, Response: "first"}
	if got := log(); rows() != 0 || len(got) != 1 || !sameAttempt(got[0], first) {
		t.Fatalf("log %+v with %d attempts rows; want the first attempt from the delivery row alone", got, rows())
	}

	// Sent again by hand: the first attempt moves to the log before the
	// second overwrites the delivery's last result.
	if _, err := s.RetryDelivery(ctx, "d1", nil); err != nil {
		t.Fatal(err)
	}
	if n := rows(); n != 1 {
		t.Fatalf("%d attempts rows after the retry; want the kept attempt copied", n)
	}
	later := now.Add(time.Minute)
	second := store.Attempt{DeliveryID: "d1", Attempt: 2, EndpointID: "ep_a", StartedAt: later, Duration: time.Millisecond, StatusCode: 204}
	if err := s.WriteBatch(ctx, &store.Batch{
		Updates:  []store.Delivery{{ID: "d1", Status: store.StatusDelivered, Attempts: 2, LastStatusCode: 204, UpdatedAt: later, DeliveredAt: later}},
		Attempts: []store.Attempt{second},
	}); err != nil {
		t.Fatal(err)
	}
	if got := log(); len(got) != 2 || !sameAttempt(got[0], first) || !sameAttempt(got[1], second) {
		t.Fatalf("log %+v; want the first then the second attempt", got)
	}
}

func sameAttempt(a, b store.Attempt) bool {
	return a.DeliveryID == b.DeliveryID && a.Attempt == b.Attempt && a.EndpointID == b.EndpointID && a.StartedAt.Equal(b.StartedAt) &&
		a.Duration == b.Duration && a.StatusCode == b.StatusCode && a.Response == b.Response && a.Error == b.Error
}

func TestBigAndSmallBatchesWriteTheSameRows(t *testing.T) {
	// From copyRows rows on, new rows go by COPY: the rows must read back
	// the same as those of a small batch, NULLs included, and a duplicate
	// must still be reported as one (the recorder then writes tolerantly).
	s := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	batch := func(prefix string, n int) *store.Batch {
		b := &store.Batch{Slot: "s", Cursor: uint64(n)}
		for i := range n {
			ev := fmt.Sprintf("evt_%s%d", prefix, i)
			id := fmt.Sprintf("%s%d", prefix, i)
			b.Events = append(b.Events, store.Event{ID: ev, Type: "order.created", TenantID: map[bool]string{true: "acme"}[i%2 == 0],
				Payload: []byte(`{"i":` + fmt.Sprint(i) + `}`), LSN: uint64(i + 1), CreatedAt: now, ReceivedAt: now,
				OutboxID: map[bool]string{true: fmt.Sprint(i)}[i%2 == 0]})
			d := store.Delivery{ID: id, EndpointID: "ep_a", EventID: ev, EventType: "order.created", Status: store.StatusDelivered,
				Attempts: 1, MaxAttempts: 5, LastStatusCode: 200, LastResponse: "ok\x00\xff", CreatedAt: now, UpdatedAt: now, DeliveredAt: now}
			if i%2 == 0 {
				d.LastAttemptAt, d.LastDuration = now, time.Millisecond
			} else {
				d.Status, d.LastStatusCode, d.LastError, d.DeliveredAt, d.NextRetryAt = store.StatusRetrying, 0, "refused", time.Time{}, now.Add(time.Minute)
				b.Attempts = append(b.Attempts, store.Attempt{DeliveryID: id, Attempt: 1, EndpointID: "ep_a", StartedAt: now, Duration: time.Millisecond,
					StatusCode: 503, Response: "busy", Error: "refused"})
			}
			b.Deliveries = append(b.Deliveries, d)
		}
		return b
	}
	small, big := batch("s", 4), batch("b", 100)
	for _, b := range []*store.Batch{small, big} {
		if err := s.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		for _, prefix := range []string{"s", "b"} {
			id := fmt.Sprintf("%s%d", prefix, i)
			d, err := s.GetDelivery(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			atts, err := s.ListAttempts(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := s.GetEvent(ctx, "evt_"+id, nil)
			if err != nil {
				t.Fatal(err)
			}
			next := "-"
			if d.NextRetryAt.After(now) {
				next = d.NextRetryAt.Sub(now).String()
			}
			got := fmt.Sprintf("%s %d %q %q %s %d %s %q %s", d.Status, d.LastStatusCode, d.LastResponse, d.LastError, next,
				len(atts), atts[0].Duration, ev.TenantID, ev.Payload)
			// Text from outside is made storable: NUL and invalid UTF-8
			// become U+FFFD.
			want := fmt.Sprintf("%s %d %q %q %s %d %s %q %s", "delivered", 200, "ok\ufffd\ufffd", "", "-", 1, "1ms", "acme", fmt.Sprintf(`{"i":%d}`, i))
			if i%2 == 1 {
				want = fmt.Sprintf("%s %d %q %q %s %d %s %q %s", "retrying", 0, "ok\ufffd\ufffd", "refused", "1m0s", 1, "1ms", "", fmt.Sprintf(`{"i":%d}`, i))
			}
			if got != want {
				t.Errorf("%s: %s\nwant %s", id, got, want)
			}
			times := []time.Time{d.CreatedAt, d.UpdatedAt, ev.CreatedAt, ev.ReceivedAt, atts[0].StartedAt}
			if i%2 == 0 {
				times = append(times, d.DeliveredAt)
			}
			for k, at := range times {
				if !at.Equal(now) {
					t.Errorf("%s: time %d is %s, want %s", id, k, at, now)
				}
			}
			if d.Attempts != 1 || d.MaxAttempts != 5 || d.EndpointID != "ep_a" || d.EventID != "evt_"+id || ev.LSN != uint64(i+1) || ev.Type != "order.created" {
				t.Errorf("%s: delivery %+v, event %+v", id, d, ev)
			}
			// The first attempt: kept on the delivery (even rows) or in
			// its own row (odd ones).
			wantAttempt, wantOutbox := fmt.Sprint(200, "ok\ufffd\ufffd", ""), fmt.Sprint(i)
			if i%2 == 1 {
				wantAttempt, wantOutbox = fmt.Sprint(503, "busy", "refused"), ""
			}
			if got := fmt.Sprint(atts[0].StatusCode, atts[0].Response, atts[0].Error); got != wantAttempt {
				t.Errorf("%s: attempt %s, want %s", id, got, wantAttempt)
			}
			if ev.OutboxID != wantOutbox {
				t.Errorf("%s: outbox id %q, want %q", id, ev.OutboxID, wantOutbox)
			}
		}
	}
	if err := s.WriteBatch(ctx, batch("b", 100)); !store.IsDuplicate(err) {
		t.Fatalf("writing the big batch again: %v, want a duplicate-key error", err)
	}
}

func TestNewestFirstListsReadTheirIndexesBackwards(t *testing.T) {
	// The list indexes are ascending (cheap to insert into at the right
	// edge); newest-first pages, as the store builds their SQL, must still
	// come from them, in order, without a sort.
	s := open(t)
	ctx := context.Background()
	cursor := &store.PageKey{CreatedAt: time.Now(), ID: "msg_z"}
	deliveries := func(f store.DeliveryFilter) func() (string, []any) {
		return func() (string, []any) { return store.DeliveriesQuery(f, time.Now()) }
	}
	tests := []struct {
		name  string
		query func() (string, []any)
		index string
	}{
		{"deliveries", deliveries(store.DeliveryFilter{Before: cursor, Limit: 50}), "deliveries_pkey"},
		{"an endpoint's deliveries", deliveries(store.DeliveryFilter{EndpointID: "ep_a", Before: cursor, Limit: 50}), "deliveries_endpoint_id_idx"},
		{"deliveries since a time", deliveries(store.DeliveryFilter{Since: time.Now().Add(-time.Hour), Limit: 50}), "deliveries_pkey"},
		{"an event's deliveries", deliveries(store.DeliveryFilter{EventID: "evt_a", Limit: 50}), "deliveries_pkey"},
		{"events", func() (string, []any) { return store.EventsQuery(store.EventFilter{Before: cursor, Limit: 50}) }, "events_created_idx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := s.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck // read-only
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off`); err != nil {
				t.Fatal(err)
			}
			sql, args := tt.query()
			rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if !strings.Contains(plan, "Scan Backward using "+tt.index) || strings.Contains(plan, "Sort") {
				t.Fatalf("plan does not read %s backwards without a sort:\n%s", tt.index, plan)
			}
		})
	}
}

// TestIdsCompareInByteOrderUnderALinguisticCollation migrates a database
// whose default collation is ICU en-US, as many users' databases have a
// linguistic one: every id column, and every index on one, must compare
// byte by byte (which is where inserts get cheaper), ties in lists must go
// by byte order, and the queries that compare ids across tables or with
// parameters must still run.
func TestIdsCompareInByteOrderUnderALinguisticCollation(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	admin := db.Cluster.DSN("postgres")
	name := db.Name + "_icu"
	conn := pgtest.Connect(t, admin)
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 150000 {
		t.Skipf("a database's own ICU collation needs PostgreSQL 15 (server %d)", version)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"); err != nil {
		if strings.Contains(err.Error(), "ICU is not supported") {
			t.Skipf("this PostgreSQL has no ICU: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	s, err := store.Open(ctx, db.Cluster.DSN(name), "walhook", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	rows, err := s.Pool().Query(ctx, `SELECT table_name || '.' || column_name, coalesce(collation_name, 'default')
		FROM information_schema.columns
		WHERE table_schema = 'walhook' AND data_type = 'text' AND column_name IN ('id', 'endpoint_id', 'event_id', 'delivery_id')
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Column, Collation string
	}])
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 10 { // 8 table columns and the view's 2
		t.Errorf("found %d id columns: %v", len(cols), cols)
	}
	for _, c := range cols {
		if c.Collation != "C" {
			t.Errorf("%s compares by collation %q, want C", c.Column, c.Collation)
		}
	}
	rows, err = s.Pool().Query(ctx, `SELECT i.indexrelid::regclass::text || '.' || a.attname, coalesce(c.collname, 'default')
		FROM pg_index i
		JOIN pg_class t ON t.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'walhook'
		CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[]) AS k(attnum, coll)
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
		LEFT JOIN pg_collation c ON c.oid = k.coll
		WHERE a.atttypid = 'text'::regtype AND a.attname IN ('id', 'endpoint_id', 'event_id', 'delivery_id')
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Key, Collation string
	}])
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 9 { // the primary keys and the list indexes
		t.Errorf("found %d index keys on ids: %v", len(keys), keys)
	}
	for _, k := range keys {
		if k.Collation != "C" {
			t.Errorf("index key %s compares by collation %q, want C", k.Key, k.Collation)
		}
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.WriteBatch(ctx, &store.Batch{
		Events: []store.Event{{ID: "evt_1", Type: "order.created", Payload: []byte(`{}`), LSN: 1, CreatedAt: now, ReceivedAt: now}},
		Deliveries: []store.Delivery{
			{ID: "msg_a", EndpointID: "ep_a", EventID: "evt_1", EventType: "order.created", Status: store.StatusDelivered, Attempts: 1, MaxAttempts: 5,
				LastStatusCode: 200, CreatedAt: now, UpdatedAt: now, DeliveredAt: now, LastAttemptAt: now},
			{ID: "msg_B", EndpointID: "ep_a", EventID: "evt_1", EventType: "order.created", Status: store.StatusRetrying, MaxAttempts: 5,
				NextRetryAt: now, CreatedAt: now, UpdatedAt: now},
		},
	}); err != nil {
		t.Fatal(err)
	}
	// Ties on created_at go by id, in byte order: "msg_B" before "msg_a",
	// where en-US puts it after.
	list, err := s.ListDeliveries(ctx, store.DeliveryFilter{EndpointID: "ep_a", Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != "msg_a" || list[1].ID != "msg_B" {
		t.Fatalf("newest first (ties by id, descending) = %v, %v", list, err)
	}
	if due, err := s.LoadDue(ctx, []string{"msg_B", "msg_a"}, now); err != nil || len(due) != 1 {
		t.Fatalf("due = %v, %v", due, err)
	}
	if atts, err := s.ListAttempts(ctx, "msg_a"); err != nil || len(atts) != 1 {
		t.Fatalf("attempt log = %v, %v", atts, err)
	}
	if _, err := s.RetryDelivery(ctx, "msg_a", nil); err != nil {
		t.Fatal(err)
	}
	if act, err := s.EndpointActivity(ctx, []string{"ep_a"}, now.Add(time.Minute)); err != nil || act["ep_a"] == nil || act["ep_a"].LastDeliveryAt.IsZero() {
		t.Fatalf("activity = %v, %v", act, err)
	}
}

// TestClaimCursorRefusesRecordsOfAnotherServer checks the start-up guard on
// walhook's records: they belong to the outbox server whose WAL positions
// their ids and cursor are, and a state database of its own does not leave
// unfinished deliveries behind beside the outbox.
func TestClaimCursorRefusesRecordsOfAnotherServer(t *testing.T) {
	ctx := context.Background()
	const slot = "walhook"
	cases := []struct {
		name    string
		split   bool
		respelt bool   // the state database is the outbox's, under another URL
		prepare string // SQL run first, in the outbox's database
		wantErr string // "" = claimed
		cursor  uint64
	}{
		{name: "first start claims the records for the server"},
		{name: "a cursor recorded from this server goes on", prepare: `INSERT INTO walhook.stream_cursors (slot, lsn, updated_at, server_id)
			SELECT 'walhook', 16, now(), system_identifier::text FROM pg_control_system()`, cursor: 16},
		{name: "a cursor of before the check is claimed", prepare: `INSERT INTO walhook.stream_cursors (slot, lsn, updated_at) VALUES ('walhook', 16, now())`, cursor: 16},
		{name: "records streamed from another server are refused, with the way to claim them", prepare: `INSERT INTO walhook.stream_cursors (slot, lsn, updated_at, server_id) VALUES ('walhook', 16, now(), '42')`,
			wantErr: "SET server_id = NULL WHERE slot = 'walhook'"},
		{name: "records of another server ahead of this one's WAL are refused", prepare: `INSERT INTO walhook.stream_cursors (slot, lsn, updated_at, server_id)
			SELECT 'walhook', pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint + (1::bigint << 40), now(), '42'`,
			wantErr: "this one's is behind them"},
		{name: "a cursor ahead of the server's WAL is refused", prepare: `INSERT INTO walhook.stream_cursors (slot, lsn, updated_at)
			SELECT 'walhook', pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint + (1::bigint << 40), now()`,
			wantErr: "ahead of the outbox server's WAL"},
		{name: "a state database refuses deliveries left unfinished beside the outbox", split: true,
			prepare: `INSERT INTO walhook.deliveries (id, endpoint_id, event_id, event_type, status, max_attempts, next_retry_at, created_at, updated_at)
				VALUES ('d1', 'ep', 'e1', 'order.created', 'retrying', 5, now(), now(), now())`,
			wantErr: "1 unfinished deliveries"},
		{name: "the outbox's database under another URL is one database", respelt: true,
			prepare: `INSERT INTO walhook.deliveries (id, endpoint_id, event_id, event_type, status, max_attempts, next_retry_at, created_at, updated_at)
				VALUES ('d1', 'ep', 'e1', 'order.created', 'retrying', 5, now(), now(), now())`},
		{name: "a state database starts when none is left", split: true,
			prepare: `INSERT INTO walhook.deliveries (id, endpoint_id, event_id, event_type, status, max_attempts, created_at, updated_at)
				VALUES ('d1', 'ep', 'e1', 'order.created', 'delivered', 5, now(), now())`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := pgtest.New(t)
			stateDSN := ""
			switch {
			case tc.split:
				stateDSN = pgtest.New(t).DSN
			case tc.respelt:
				stateDSN = db.DSN + "&application_name=walhook-state"
			}
			s, err := store.OpenSplit(ctx, db.DSN, stateDSN, "walhook", 4)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != "" {
				pgtest.Exec(t, db.DSN, tc.prepare)
			}
			cursor, err := s.ClaimCursor(ctx, slot)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ClaimCursor: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ClaimCursor: %v, want an error containing %q", err, tc.wantErr)
			case tc.wantErr != "":
				return
			case cursor != tc.cursor:
				t.Errorf("cursor %d, want %d", cursor, tc.cursor)
			}
			var owner, server string
			if err := s.Pool().QueryRow(ctx, `SELECT server_id, (SELECT system_identifier::text FROM pg_control_system()) FROM stream_cursors WHERE slot = $1`, slot).Scan(&owner, &server); err != nil {
				t.Fatal(err)
			}
			if owner != server {
				t.Errorf("cursor claimed for server %q, want %q", owner, server)
			}
		})
	}
}
