package recorder_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/recorder"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

const slot = "walhook_test"

// call is one hand-over to the scheduler, with the delivery's status in
// the store at that moment ("" when its row does not exist).
type call struct {
	kind, endpoint, id string
	at                 time.Time
	stored             string
}

// scheduler records hand-overs and looks the delivery up in the store as
// each arrives, to tell whether its row was committed first.
type scheduler struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	calls []call
}

func (s *scheduler) status(id string) string {
	var st string
	if err := s.pool.QueryRow(context.Background(), `SELECT status FROM deliveries WHERE id = $1`, id).Scan(&st); err != nil {
		return ""
	}
	return st
}

func (s *scheduler) Schedule(id string, at time.Time) {
	c := call{kind: "schedule", id: id, at: at, stored: s.status(id)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *scheduler) Park(endpointID, deliveryID string) {
	c := call{kind: "park", endpoint: endpointID, id: deliveryID, stored: s.status(deliveryID)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *scheduler) all() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

type bundle struct {
	st    *store.Store
	dsn   string
	rec   *recorder.Recorder
	sched *scheduler
}

func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, "walhook", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func setup(t *testing.T, mutate func(*recorder.Options)) *bundle {
	t.Helper()
	db := pgtest.New(t)
	return setupOn(t, db.DSN, mutate)
}

func setupOn(t *testing.T, dsn string, mutate func(*recorder.Options)) *bundle {
	t.Helper()
	b := &bundle{st: openStore(t, dsn), dsn: dsn}
	b.sched = &scheduler{pool: b.st.Pool()}
	// A short hold keeps the tests quick; the hold's own test sets its own.
	opts := recorder.Options{Store: b.st, Slot: slot, Scheduler: b.sched, Hold: 100 * time.Millisecond}
	if mutate != nil {
		mutate(&opts)
	}
	b.rec = recorder.New(opts)
	return b
}

// run runs the recorder; stop ends it, waits for Run to return and says how
// long that took. It is also called when the test ends.
func (b *bundle) run(t *testing.T) (stop func() time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.rec.Run(ctx) }()
	var once sync.Once
	var took time.Duration
	stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after its context ended")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return stop
}

func (b *bundle) add(t *testing.T, txn *recorder.Txn) {
	t.Helper()
	if err := b.rec.Add(context.Background(), txn); err != nil {
		t.Fatalf("Add(end %d): %v", txn.EndLSN, err)
	}
}

func (b *bundle) waitDurable(t *testing.T, lsn uint64) {
	t.Helper()
	waitfor.True(t, fmt.Sprintf("Durable to reach %d", lsn), 30*time.Second, func() bool { return b.rec.Durable() >= lsn })
	if got := b.rec.Durable(); got != lsn {
		t.Fatalf("Durable = %d, want %d", got, lsn)
	}
}

func (b *bundle) delivery(t *testing.T, id string) *store.Delivery {
	t.Helper()
	d, err := b.st.GetDelivery(context.Background(), id)
	if err != nil {
		t.Fatalf("delivery %s: %v", id, err)
	}
	return d
}

func (b *bundle) exists(t *testing.T, table, id string) bool {
	t.Helper()
	var n int
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func (b *bundle) attempts(t *testing.T, id string) []store.Attempt {
	t.Helper()
	atts, err := b.st.ListAttempts(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return atts
}

var now = time.Now().UTC().Truncate(time.Microsecond)

// txn is a source transaction with one event and one delivery per id.
func txn(end uint64, ids ...string) *recorder.Txn {
	t := &recorder.Txn{EndLSN: end}
	for i, id := range ids {
		t.Events = append(t.Events, store.Event{ID: "evt_" + id, Type: "order.created", Payload: []byte(`{"id":"` + id + `"}`),
			LSN: end - uint64(len(ids)-i), CreatedAt: now, ReceivedAt: now})
		t.Deliveries = append(t.Deliveries, store.Delivery{ID: id, EndpointID: "ep_a", EventID: "evt_" + id, EventType: "order.created",
			Status: store.StatusPending, MaxAttempts: 5, CreatedAt: now, UpdatedAt: now})
	}
	if len(ids) > 0 {
		t.EventTypes = []string{"order.created"}
	}
	return t
}

// result is an attempt's outcome as the dispatcher reports it.
func result(id string, attempt, code int, status store.Status, next time.Time) delivery.Result {
	r := delivery.Result{
		Delivery: store.Delivery{ID: id, EndpointID: "ep_a", EventID: "evt_" + id, EventType: "order.created", Status: status,
			Attempts: attempt, MaxAttempts: 5, NextRetryAt: next, LastStatusCode: code, LastResponse: fmt.Sprintf("answer %d", code), UpdatedAt: now},
		Attempt: store.Attempt{DeliveryID: id, Attempt: attempt, EndpointID: "ep_a", StartedAt: now, Duration: time.Millisecond,
			StatusCode: code, Response: fmt.Sprintf("answer %d", code)},
	}
	if status == store.StatusDelivered {
		r.Delivery.DeliveredAt = now
	}
	return r
}

// lock takes an exclusive lock on one of walhook's tables, so the
// recorder's next write to it waits; the returned func releases it.
func lock(t *testing.T, dsn, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE walhook.`+table+` IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
			}
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// waitBlocked waits until a write waits for the lock on table.
func (b *bundle) waitBlocked(t *testing.T, table string) {
	t.Helper()
	waitfor.True(t, "the recorder to wait for the lock on "+table, 10*time.Second, func() bool {
		var n int
		err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE NOT granted AND relation = ('walhook.' || $1)::regclass`, table).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

func TestDurableNeverPassesUncommittedRows(t *testing.T) {
	b := setup(t, nil)
	b.rec.SetDurable(50)
	if d := b.rec.Durable(); d != 50 {
		t.Fatalf("Durable after SetDurable(50) = %d", d)
	}

	// A watcher checks, for every position Durable reports, that the rows of
	// every transaction ending at or before it are committed.
	var mu sync.Mutex
	txns := map[uint64][]string{}
	var violations []string
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			durable := b.rec.Durable()
			mu.Lock()
			var want []string
			for end, ids := range txns {
				if end <= durable {
					want = append(want, ids...)
				}
			}
			mu.Unlock()
			var n int
			if err := b.st.Pool().QueryRow(watchCtx, `SELECT count(*) FROM deliveries WHERE id = ANY($1)`, want).Scan(&n); err == nil && n != len(want) {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("Durable %d with %d of %d rows committed", durable, n, len(want)))
				mu.Unlock()
			}
		}
	}()
	add := func(t *testing.T, tx *recorder.Txn) {
		t.Helper()
		mu.Lock()
		for _, d := range tx.Deliveries {
			txns[tx.EndLSN] = append(txns[tx.EndLSN], d.ID)
		}
		mu.Unlock()
		b.add(t, tx)
	}
	b.run(t)

	add(t, txn(100, "d1", "d2"))
	b.waitDurable(t, 100)

	release := lock(t, b.dsn, "deliveries")
	add(t, txn(200, "d3"))
	b.waitBlocked(t, "deliveries")
	add(t, txn(250))             // an empty transaction
	add(t, txn(300, "d4", "d5")) // the next batch
	if d := b.rec.Durable(); d != 100 {
		t.Fatalf("Durable = %d while the batch ending at 200 is unwritten", d)
	}
	if err := b.rec.Ready(context.Background()); err != nil {
		t.Fatalf("a slow write made the recorder unready: %v", err)
	}
	release()
	b.waitDurable(t, 300)
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		if !b.exists(t, "deliveries", id) || !b.exists(t, "events", "evt_"+id) {
			t.Errorf("%s or its event missing", id)
		}
	}
	if c, err := b.st.Cursor(context.Background(), slot); err != nil || c != 300 {
		t.Fatalf("stream cursor %d (%v), want 300 written with the rows", c, err)
	}

	add(t, txn(400)) // empty transactions alone move Durable too
	b.waitDurable(t, 400)

	stopWatch()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("Durable passed uncommitted rows: %v", violations)
	}
}

// logUpdates records every UPDATE of a delivery row in walhook.updated.
func logUpdates(t *testing.T, dsn string) {
	t.Helper()
	pgtest.Exec(t, dsn, `CREATE TABLE walhook.updated (id text);
		CREATE FUNCTION walhook.log_update() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO walhook.updated VALUES (NEW.id); RETURN NEW; END $$;
		CREATE TRIGGER log_update AFTER UPDATE ON walhook.deliveries FOR EACH ROW EXECUTE FUNCTION walhook.log_update()`)
}

func (b *bundle) updates(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM walhook.updated WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestResultBeforeTheInsertIsFoldedIntoIt(t *testing.T) {
	b := setup(t, nil)
	logUpdates(t, b.dsn)
	next := now.Add(time.Hour)
	// Results arrive before Run writes anything: the delivery rows are
	// still in the pending batch.
	b.add(t, txn(10, "d_ok", "d_retry", "d_fail"))
	b.rec.Result(result("d_ok", 1, 200, store.StatusDelivered, time.Time{}))
	b.rec.Result(result("d_retry", 1, 500, store.StatusRetrying, next))
	b.rec.Result(result("d_fail", 1, 410, store.StatusFailed, time.Time{}))
	b.run(t)
	b.waitDurable(t, 10)

	for _, tt := range []struct {
		id     string
		status store.Status
		code   int
		next   time.Time
	}{
		{"d_ok", store.StatusDelivered, 200, time.Time{}},
		{"d_retry", store.StatusRetrying, 500, next},
		{"d_fail", store.StatusFailed, 410, time.Time{}},
	} {
		d := b.delivery(t, tt.id)
		if d.Status != tt.status || d.Attempts != 1 || d.LastStatusCode != tt.code || d.LastResponse != fmt.Sprintf("answer %d", tt.code) ||
			!d.NextRetryAt.Equal(tt.next) || d.DeliveredAt.IsZero() != (tt.status != store.StatusDelivered) {
			t.Errorf("%s = %+v; want %s after 1 attempt with %d", tt.id, d, tt.status, tt.code)
		}
		if n := b.updates(t, tt.id); n != 0 {
			t.Errorf("%s inserted then updated %d times; want the result folded into the insert", tt.id, n)
		}
		if atts := b.attempts(t, tt.id); len(atts) != 1 || atts[0].StatusCode != tt.code || atts[0].Duration != time.Millisecond {
			t.Errorf("%s attempts %+v", tt.id, atts)
		}
		// A first attempt that delivered stays on the delivery's row: no
		// attempts row. Others are logged there (the next attempt will
		// overwrite the row's last result).
		var rows int
		if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM attempts WHERE delivery_id = $1`, tt.id).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 1}[tt.status == store.StatusDelivered]; rows != want {
			t.Errorf("%s has %d attempts rows, want %d", tt.id, rows, want)
		}
	}
	// Durable moves before the hand-over to the scheduler: wait for it.
	waitfor.True(t, "the retry handed to the scheduler", 10*time.Second, func() bool { return len(b.sched.all()) > 0 })
	want := []call{{kind: "schedule", id: "d_retry", at: next, stored: "retrying"}}
	if got := b.sched.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scheduler got %+v, want %+v", got, want)
	}
}

func TestResultDuringTheInsertIsAppliedAfterIt(t *testing.T) {
	b := setup(t, nil)
	logUpdates(t, b.dsn)
	b.run(t)
	release := lock(t, b.dsn, "deliveries")
	b.add(t, txn(10, "d1"))
	b.waitBlocked(t, "deliveries")
	next := now.Add(time.Hour)
	b.rec.Result(result("d1", 1, 503, store.StatusRetrying, next))
	release()
	waitfor.True(t, "d1 scheduled", 10*time.Second, func() bool { return len(b.sched.all()) == 1 })
	if c := b.sched.all()[0]; c.kind != "schedule" || c.id != "d1" || !c.at.Equal(next) || c.stored != "retrying" {
		t.Fatalf("scheduler got %+v; want d1 at %v once its retrying row is committed", c, next)
	}
	if d := b.delivery(t, "d1"); d.Status != store.StatusRetrying || d.Attempts != 1 || d.LastStatusCode != 503 || b.updates(t, "d1") != 1 {
		t.Fatalf("d1 = %+v after %d updates; want the insert then one update", d, b.updates(t, "d1"))
	}
}

func TestScheduleAndParkOnlyAfterTheCommit(t *testing.T) {
	b := setup(t, nil)
	b.run(t)
	b.add(t, txn(10, "d_retry", "d_parked", "d_done"))
	b.waitDurable(t, 10)

	release := lock(t, b.dsn, "deliveries")
	next := now.Add(time.Minute)
	b.rec.Result(result("d_retry", 1, 500, store.StatusRetrying, next))
	b.rec.Park("ep_a", "d_parked")
	b.rec.Result(result("d_done", 1, 200, store.StatusDelivered, time.Time{}))
	b.waitBlocked(t, "deliveries")
	if c := b.sched.all(); len(c) != 0 {
		t.Fatalf("handed to the scheduler before the commit: %+v", c)
	}
	release()
	waitfor.True(t, "the retry and the park handed over", 10*time.Second, func() bool { return len(b.sched.all()) == 2 })

	// A park recorded with its delivery's insert comes after that commit too.
	b.add(t, txn(20, "d_new"))
	b.rec.Park("ep_a", "d_new")
	waitfor.True(t, "the park of d_new", 10*time.Second, func() bool { return len(b.sched.all()) == 3 })

	want := []call{
		{kind: "schedule", id: "d_retry", at: next, stored: "retrying"},
		{kind: "park", endpoint: "ep_a", id: "d_parked", stored: "pending"},
		{kind: "park", endpoint: "ep_a", id: "d_new", stored: "pending"},
	}
	if got := b.sched.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scheduler got\n%+v\nwant\n%+v", got, want)
	}
}

func TestDuplicateKeysAreWrittenAgainTolerantly(t *testing.T) {
	tests := []struct {
		name    string
		before  store.Batch // already in the store
		txn     *recorder.Txn
		results []delivery.Result
		check   func(t *testing.T, b *bundle)
	}{
		{
			name: "an attempt row that exists",
			before: func() store.Batch {
				tx := txn(5, "d1")
				tx.Deliveries[0].Status, tx.Deliveries[0].Attempts = store.StatusRetrying, 1
				return store.Batch{Events: tx.Events, Deliveries: tx.Deliveries,
					Attempts: []store.Attempt{{DeliveryID: "d1", Attempt: 1, EndpointID: "ep_a", StartedAt: now, StatusCode: 500, Response: "first"}}}
			}(),
			txn:     txn(20, "d2"),
			results: []delivery.Result{result("d1", 1, 502, store.StatusRetrying, now.Add(time.Hour))},
			check: func(t *testing.T, b *bundle) {
				if atts := b.attempts(t, "d1"); len(atts) != 1 || atts[0].Response != "first" {
					t.Errorf("attempts of d1 = %+v; want the existing row kept", atts)
				}
				if d := b.delivery(t, "d1"); d.LastStatusCode != 502 {
					t.Errorf("d1 = %+v; want the update applied", d)
				}
				if !b.exists(t, "deliveries", "d2") {
					t.Error("d2, in the same batch as the duplicate, was not written")
				}
			},
		},
		{
			name:   "a transaction recorded again",
			before: store.Batch{Events: txn(5, "d1").Events, Deliveries: txn(5, "d1").Deliveries},
			txn: func() *recorder.Txn {
				tx := txn(20, "d1", "d2")
				tx.DeadLetters = []store.DeadLetter{{LSN: 19, OutboxID: "7", Reason: "empty event type", Raw: []byte(`{"id":7}`)}}
				return tx
			}(),
			check: func(t *testing.T, b *bundle) {
				if !b.exists(t, "deliveries", "d2") || !b.exists(t, "events", "evt_d2") {
					t.Error("the new delivery next to the duplicate was not written")
				}
				var n int
				if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM dead_letters WHERE outbox_id = '7'`).Scan(&n); err != nil || n != 1 {
					t.Errorf("dead letters %d (%v), want 1", n, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, nil)
			if err := b.st.WriteBatch(context.Background(), &tt.before); err != nil {
				t.Fatal(err)
			}
			b.add(t, tt.txn)
			for _, r := range tt.results {
				b.rec.Result(r)
			}
			b.run(t)
			b.waitDurable(t, tt.txn.EndLSN)
			tt.check(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := b.rec.Ready(ctx); err != nil {
				t.Fatalf("not ready after a duplicate: %v", err)
			}
			b.add(t, txn(tt.txn.EndLSN+10, "d_after"))
			b.waitDurable(t, tt.txn.EndLSN+10)
		})
	}
}

func TestFoldedResultSurvivesADuplicateInsert(t *testing.T) {
	b := setup(t, nil)
	// The delivery's row exists already (its transaction was recorded);
	// the transaction comes again and its attempt's result is folded into
	// the insert that the tolerant write then skips.
	if err := b.st.WriteBatch(context.Background(), &store.Batch{Events: txn(5, "d1").Events, Deliveries: txn(5, "d1").Deliveries}); err != nil {
		t.Fatal(err)
	}
	b.add(t, txn(20, "d1"))
	b.rec.Result(result("d1", 1, 200, store.StatusDelivered, time.Time{}))
	b.run(t)
	b.waitDurable(t, 20)
	if atts := b.attempts(t, "d1"); len(atts) != 1 {
		t.Fatalf("attempts %+v", atts)
	}
	if d := b.delivery(t, "d1"); d.Status != store.StatusDelivered || d.Attempts != 1 {
		t.Fatalf("d1 = %s after %d attempts with its attempt row written; want the delivered result recorded", d.Status, d.Attempts)
	}
}

func TestResponseWithANULByteDoesNotStallRecording(t *testing.T) {
	b := setup(t, nil)
	b.run(t)
	b.add(t, txn(10, "d1"))
	b.waitDurable(t, 10)
	r := result("d1", 1, 500, store.StatusRetrying, now.Add(time.Hour))
	r.Attempt.Response = "binary\x00answer" // as delivery keeps it: valid UTF-8
	r.Delivery.LastResponse = r.Attempt.Response
	b.rec.Result(r)
	b.add(t, txn(20, "d2"))
	b.waitDurable(t, 20)
}

func TestStoreOutage(t *testing.T) {
	c := pgtest.NewCluster(t, map[string]string{"fsync": "off", "log_min_messages": "fatal"})
	b := setupOn(t, c.DSN("postgres"), func(o *recorder.Options) { o.FinalFlush = time.Second })
	stop := b.run(t)
	ctx := context.Background()
	b.add(t, txn(10, "d1"))
	b.waitDurable(t, 10)

	if err := c.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	b.add(t, txn(20, "d2")) // accepted: nothing has failed yet
	waitfor.True(t, "Add to refuse while the store is down", 30*time.Second, func() bool {
		return errors.Is(b.rec.Add(ctx, &recorder.Txn{}), recorder.ErrUnavailable)
	})
	if err := b.rec.Add(ctx, txn(30, "d3")); !errors.Is(err, recorder.ErrUnavailable) {
		t.Fatalf("Add while down = %v, want ErrUnavailable", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := b.rec.Ready(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready while down = %v, want it to block", err)
	}
	ready := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ready <- b.rec.Ready(ctx)
	}()
	b.rec.Result(result("d1", 1, 200, store.StatusDelivered, time.Time{})) // results keep coming
	if d := b.rec.Durable(); d != 10 {
		t.Fatalf("Durable = %d while the store is down, want 10", d)
	}
	select {
	case err := <-ready:
		t.Fatalf("Ready returned %v while the store is down", err)
	default:
	}

	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	if err := c.Restart(rctx, "fast"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("Ready after recovery: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Ready still blocked 30s after the store came back")
	}
	b.waitDurable(t, 20)
	if !b.exists(t, "deliveries", "d2") {
		t.Error("d2, accepted before the outage was noticed, was not written")
	}
	if b.exists(t, "deliveries", "d3") {
		t.Error("d3, refused with ErrUnavailable, was written")
	}
	// The result reported during the outage is in the batch after the one
	// that failed: it follows right after.
	waitfor.True(t, "d1's result reported during the outage", 10*time.Second, func() bool {
		return b.delivery(t, "d1").Status == store.StatusDelivered
	})
	if atts := b.attempts(t, "d1"); len(atts) != 1 || atts[0].StatusCode != 200 {
		t.Errorf("attempts of d1 = %+v; want the one reported during the outage", atts)
	}
	if cur, err := b.st.Cursor(ctx, slot); err != nil || cur != 20 {
		t.Errorf("cursor %d (%v), want 20", cur, err)
	}
	b.add(t, txn(40, "d4"))
	b.waitDurable(t, 40)

	// Ending with the store down gives up within FinalFlush, writing nothing.
	if err := c.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	b.add(t, txn(50, "d5"))
	if took := stop(); took > 5*time.Second {
		t.Fatalf("Run took %s to return with the store down; FinalFlush is 1s", took)
	}
	if d := b.rec.Durable(); d != 40 {
		t.Fatalf("Durable = %d after giving up, want 40", d)
	}
}

func TestRunWritesWhatIsPendingWhenItEnds(t *testing.T) {
	b := setup(t, nil)
	ctx := context.Background()
	ep := &store.Endpoint{URL: "https://example.com/hook", Secret: "whsec_dGVzdA==", EventTypes: []string{"*"}, Active: true}
	if err := b.st.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	failingSince := now.Add(-time.Hour)

	b.add(t, txn(10, "d1", "d2"))
	b.rec.Result(result("d1", 1, 200, store.StatusDelivered, time.Time{}))
	b.rec.Park(ep.ID, "d2")
	b.rec.Health(store.EndpointHealth{EndpointID: ep.ID, FailingSince: failingSince})
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	done := make(chan struct{})
	go func() { defer close(done); b.rec.Run(stopped) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}

	if d := b.rec.Durable(); d != 10 {
		t.Fatalf("Durable = %d, want 10", d)
	}
	if d := b.delivery(t, "d1"); d.Status != store.StatusDelivered {
		t.Errorf("d1 = %+v", d)
	}
	if !b.exists(t, "deliveries", "d2") {
		t.Error("d2 not written")
	}
	e, err := b.st.GetEndpoint(ctx, ep.ID, nil)
	if err != nil || !e.FailingSince.Equal(failingSince) {
		t.Errorf("endpoint failing_since %v (%v), want %v", e.FailingSince, err, failingSince)
	}
	if got := b.sched.all(); len(got) != 1 || got[0].kind != "park" || got[0].stored != "pending" {
		t.Errorf("scheduler got %+v; want the park after its row", got)
	}
}

// TestAddWaitsForRoom checks that Add waits while the pending rows are
// over MaxPending, payloads counted (one event of 1 MiB takes the room of
// 256 rows), and goes on once the recorder has written.
func TestAddWaitsForRoom(t *testing.T) {
	bigPayload := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	for _, tc := range []struct {
		name       string
		maxPending int
		first      func() *recorder.Txn
	}{
		{name: "rows", maxPending: 2, first: func() *recorder.Txn { return txn(10, "d1", "d2") }}, // 4 rows
		{name: "payloads", maxPending: 100, first: func() *recorder.Txn { // 2 rows and 1 MiB
			t := txn(10, "d1")
			t.Events[0].Payload = bigPayload
			return t
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, func(o *recorder.Options) { o.MaxPending = tc.maxPending })
			b.add(t, tc.first()) // full
			added := make(chan error, 1)
			go func() { added <- b.rec.Add(context.Background(), txn(20, "d3")) }()
			select {
			case err := <-added:
				t.Fatalf("Add returned %v with the pending rows over MaxPending", err)
			case <-time.After(200 * time.Millisecond):
			}
			b.run(t)
			select {
			case err := <-added:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Add still waiting after the recorder wrote")
			}
			b.waitDurable(t, 20)
		})
	}
}

func TestAddWaitingForRoomHonoursItsContext(t *testing.T) {
	b := setup(t, func(o *recorder.Options) { o.MaxPending = 1 })
	b.add(t, txn(10, "d1"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	added := make(chan error, 1)
	go func() { added <- b.rec.Add(ctx, txn(20, "d2")) }()
	select {
	case err := <-added:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Add = %v, want its context's error", err)
		}
	case <-time.After(3 * time.Second):
		b.run(t) // a write wakes it, so the goroutine ends
		<-added
		t.Fatal("Add kept waiting for room after its context ended")
	}
}

func TestNewDeliveriesAreHeldForTheirFirstResult(t *testing.T) {
	b := setup(t, func(o *recorder.Options) { o.Hold = 2 * time.Second })
	logUpdates(t, b.dsn)
	b.run(t)

	b.add(t, txn(5))
	b.waitDurable(t, 5)
	// The delivery waits for its result, its event with it (one commit for
	// both), and the transaction does not count as recorded meanwhile; nor
	// does a later one without deliveries.
	b.add(t, txn(10, "d_held"))
	b.add(t, txn(20))
	time.Sleep(300 * time.Millisecond) // well inside the 2s hold
	if b.exists(t, "events", "evt_d_held") || b.exists(t, "deliveries", "d_held") || b.rec.Durable() != 5 {
		t.Fatalf("event %v, delivery %v, Durable %d before the result or the end of the hold",
			b.exists(t, "events", "evt_d_held"), b.exists(t, "deliveries", "d_held"), b.rec.Durable())
	}
	b.rec.Result(result("d_held", 1, 200, store.StatusDelivered, time.Time{}))
	b.waitDurable(t, 20)
	if d := b.delivery(t, "d_held"); d.Status != store.StatusDelivered || d.Attempts != 1 || b.updates(t, "d_held") != 0 {
		t.Fatalf("d_held = %+v after %d updates; want one row, written delivered", d, b.updates(t, "d_held"))
	}

	// Without a result, the hold ends and the delivery is written pending.
	start := time.Now()
	b.add(t, txn(30, "d_slow"))
	b.waitDurable(t, 30)
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("Durable passed a held delivery after %s, before its hold ended", took)
	}
	if d := b.delivery(t, "d_slow"); d.Status != store.StatusPending {
		t.Fatalf("d_slow = %+v, want pending", d)
	}

	// A park ends the hold at once: the row must be written to be read back.
	b.add(t, txn(40, "d_parked"))
	b.rec.Park("ep_a", "d_parked")
	waitfor.True(t, "the park handed over", 10*time.Second, func() bool { return len(b.sched.all()) == 1 })
	if c := b.sched.all()[0]; c.kind != "park" || c.id != "d_parked" || c.stored != "pending" {
		t.Fatalf("scheduler got %+v; want the park after its pending row", c)
	}
	if took := time.Since(start); took > 4*time.Second+time.Second {
		t.Fatalf("the park waited for the hold (%s)", took)
	}
}
