package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

// TestStateDatabaseHoldsTheRecordsWhileEndpointsStayWithTheOutbox runs
// walhook with database.state_url (another database of the test cluster: the
// split is the same on another server). Events, deliveries and attempts are
// recorded there and nowhere else; endpoints, and the health walhook finds
// by delivering, stay beside the outbox, where the stream reads their
// changes; a retry asked through the API reaches the running walhook; and a
// restart resumes from the cursor kept in the state database.
func TestStateDatabaseHoldsTheRecordsWhileEndpointsStayWithTheOutbox(t *testing.T) {
	db, state := pgtest.New(t), pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Database.StateURL = state.DSN
	s := start(t, cfg)
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	if s.Store.Pool() == s.Store.OutboxPool() {
		t.Fatal("the store has one pool; want one per database")
	}

	rcv := newReceiver(t)
	ep := subscribe(t, cfg, s, rcv, rcv.srv.URL, "order.*")
	goneRcv := newReceiver(t)
	failWhileOn(goneRcv, http.StatusGone)
	gone := subscribe(t, cfg, s, goneRcv, goneRcv.srv.URL, "order.*")
	insertEvents(t, db.DSN, 20, "order.created", true)
	waitfor.True(t, "20 deliveries delivered", 20*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 20
	})
	waitfor.True(t, "the endpoint answering 410 disabled", 10*time.Second, func() bool { return !endpointRow(t, s, gone.ID).Active })

	count := func(dsn, table string) int {
		t.Helper()
		conn := pgtest.Connect(t, dsn)
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM walhook.`+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stateDSN := state.DSN
	for _, c := range []struct {
		dsn, where, table string
		want              int
	}{
		{stateDSN, "state", "events", 20},
		{stateDSN, "state", "deliveries WHERE status = 'delivered'", 20},
		{stateDSN, "state", "stream_cursors", 1},
		{stateDSN, "state", "endpoints", 0},
		{db.DSN, "outbox", "events", 0},
		{db.DSN, "outbox", "deliveries", 0},
		{db.DSN, "outbox", "stream_cursors", 0},
		{db.DSN, "outbox", "endpoints", 2},
		{db.DSN, "outbox", "endpoints WHERE disabled_reason LIKE '%410%'", 1},
	} {
		if got := count(c.dsn, c.table); got != c.want {
			t.Errorf("%s database: %d rows in %s, want %d", c.where, got, c.table, c.want)
		}
	}

	// A retry through the API is a change in the state database and a
	// signal beside the outbox, which the running walhook streams.
	ds, err := s.Store.ListDeliveries(context.Background(), store.DeliveryFilter{EndpointID: ep.ID, Limit: 1})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries of %s: %v, %v", ep.ID, ds, err)
	}
	if _, err := app.Service(cfg, s.Store).RetryDelivery(context.Background(), ds[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, "the retried delivery sent again", 10*time.Second, func() bool { return rcv.requests() == 21 })
	waitfor.True(t, "the retried delivery delivered again", 10*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 20
	})

	// Events committed while walhook is stopped arrive after its start,
	// each once: the stream resumes from the state database's cursor.
	s.Stop()
	stopped = true
	insertEvents(t, db.DSN, 10, "order.paid", true)
	s = start(t, cfg)
	stopped = false
	waitfor.True(t, "30 deliveries delivered", 20*time.Second, func() bool { return countStatus(t, s.Store, store.StatusDelivered) == 30 })
	if got, want := rcv.distinct(), 30; got != want {
		t.Errorf("receiver saw %d distinct webhook-ids, want %d", got, want)
	}
	if got := count(db.DSN, "deliveries"); got != 0 {
		t.Errorf("outbox database: %d deliveries after the restart, want 0", got)
	}
}
