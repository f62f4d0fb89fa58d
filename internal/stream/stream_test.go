package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/waitfor"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Every wait in these tests is bounded by this deadline.
const waitFor = 15 * time.Second

// handler is a test Handler. It passes each transaction to the test through
// got; Durable is what the test sets (or, with autoDurable, whatever was
// handled without error); fail and ready let a test refuse work.
type handler struct {
	got         chan *Txn
	durable     atomic.Uint64
	autoDurable bool
	fail        func(txn *Txn) error        // nil: accept everything
	ready       func(context.Context) error // nil: always ready
}

func newHandler() *handler { return &handler{got: make(chan *Txn, 100)} }

func (h *handler) HandleTxn(ctx context.Context, txn *Txn) error {
	h.got <- txn
	if h.fail != nil {
		if err := h.fail(txn); err != nil {
			return err
		}
	}
	if h.autoDurable {
		h.durable.Store(txn.EndLSN)
	}
	return nil
}

func (h *handler) Durable() uint64 { return h.durable.Load() }

func (h *handler) Ready(ctx context.Context) error {
	if h.ready != nil {
		return h.ready(ctx)
	}
	return nil
}

// next returns the next transaction handed over.
func (h *handler) next(t *testing.T) *Txn {
	t.Helper()
	select {
	case txn := <-h.got:
		return txn
	case <-time.After(waitFor):
		t.Fatalf("no transaction handed over within %s", waitFor)
		return nil
	}
}

// bundle is one test's database: an outbox table, a publication of its
// inserts and a slot.
type bundle struct {
	dsn  string
	slot string
	pub  string
	conn *pgx.Conn
}

func setup(t *testing.T) *bundle {
	t.Helper()
	db := pgtest.New(t)
	b := &bundle{dsn: db.DSN, slot: "walhook_" + db.Name, pub: "outbox_pub"}
	pgtest.Exec(t, b.dsn, `CREATE TABLE outbox (
		id bigserial PRIMARY KEY, event_type text NOT NULL, payload jsonb NOT NULL,
		tenant_id text, created_at timestamptz NOT NULL DEFAULT now())`)
	// The publication before the slot: a slot does not see a publication
	// created after it.
	pgtest.Exec(t, b.dsn, `CREATE PUBLICATION outbox_pub FOR TABLE outbox WITH (publish = 'insert')`)
	pgtest.Exec(t, b.dsn, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, b.slot)
	b.conn = b.connect(t)
	return b
}

func (b *bundle) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// run starts a stream on the bundle's slot; the returned function stops it
// and waits for Run to return (also done at cleanup).
func (b *bundle) run(t *testing.T, h Handler, resumeAfter uint64, opts Options) (*Stream, func()) {
	t.Helper()
	opts.DSN, opts.Slot = b.dsn, b.slot
	if opts.Publications == nil {
		opts.Publications = []string{b.pub}
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = 20 * time.Millisecond
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	s := New(opts, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, resumeAfter) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitFor):
				t.Errorf("Run did not return within %s of cancel", waitFor)
			}
			// The walsender leaves after the client: wait, so that the
			// next stream (or the slot's drop at cleanup) finds the slot
			// free.
			b.waitState(t, "the walsender to leave", func(st slotState) bool { return st.pid == 0 })
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := b.conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// insert commits one outbox row in its own transaction.
func (b *bundle) insert(t *testing.T, eventType string) {
	t.Helper()
	b.exec(t, `INSERT INTO outbox (event_type, payload) VALUES ($1, '{}')`, eventType)
}

// slotState is the slot as Postgres sees it.
type slotState struct {
	confirmed uint64 // confirmed_flush_lsn
	pid       int32  // active_pid, 0 when no walsender streams it
	flush     uint64 // flush_lsn of the walsender's last reply
	replyTime time.Time
}

func (b *bundle) state(t *testing.T) slotState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var st slotState
	var confirmed, flush string
	var reply *time.Time
	err := b.conn.QueryRow(ctx, `SELECT s.confirmed_flush_lsn::text, coalesce(s.active_pid, 0), coalesce(r.flush_lsn::text, '0/0'), r.reply_time
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_name = $1`, b.slot).Scan(&confirmed, &st.pid, &flush, &reply)
	if err != nil {
		t.Fatalf("read slot %s: %v", b.slot, err)
	}
	st.confirmed, st.flush = parseLSN(t, confirmed), parseLSN(t, flush)
	if reply != nil {
		st.replyTime = *reply
	}
	return st
}

func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(lsn)
}

// waitState polls the slot until cond holds, failing after the deadline.
func (b *bundle) waitState(t *testing.T, what string, cond func(slotState) bool) slotState {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st := b.state(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; slot: confirmed %s, pid %d, flush %s", waitFor, what,
				pglogrepl.LSN(st.confirmed), st.pid, pglogrepl.LSN(st.flush))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReplyAfter waits for a standby status update the stream composed
// after t0 (its reply_time is the client's clock when it sent it).
func (b *bundle) waitReplyAfter(t *testing.T, t0 time.Time) slotState {
	t.Helper()
	return b.waitState(t, "a status update after "+t0.Format(time.StampMicro), func(st slotState) bool {
		return st.replyTime.After(t0)
	})
}

func valueOf(t *testing.T, c Change, name string) []byte {
	t.Helper()
	i := c.Rel.Column(name)
	if i < 0 || i >= len(c.Values) {
		t.Fatalf("no column %s in %s.%s (%v)", name, c.Rel.Namespace, c.Rel.Name, c.Rel.Columns)
	}
	return c.Values[i]
}

// Committed transactions arrive whole and in commit order, which is not the
// order they began in; rolled-back ones never arrive.
func TestCommittedTransactionsInCommitOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := newHandler()
	b.run(t, h, 0, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	// first begins first and commits last.
	first, err := b.connect(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var firstXid uint64
	if err := first.QueryRow(ctx, `SELECT txid_current()`).Scan(&firstXid); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, `INSERT INTO outbox (event_type, payload, tenant_id) VALUES
		('a.1', '{"n": 1}', 'acme'), ('a.2', '{"s": "é"}', NULL)`); err != nil {
		t.Fatal(err)
	}
	second, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var secondXid uint64
	if err := second.QueryRow(ctx, `INSERT INTO outbox (event_type, payload, tenant_id) VALUES ('b.1', '[]', '') RETURNING txid_current()`).Scan(&secondXid); err != nil {
		t.Fatal(err)
	}
	if err := second.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rolledBack, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rolledBack.Exec(ctx, `INSERT INTO outbox (event_type, payload) VALUES ('never', '{}')`); err != nil {
		t.Fatal(err)
	}
	if err := rolledBack.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	b.insert(t, "c.1")

	txns := []*Txn{h.next(t), h.next(t), h.next(t)}
	type row struct{ typ, payload, tenant string }
	want := []struct {
		xid  uint64
		rows []row
	}{
		{secondXid, []row{{"b.1", "[]", ""}}},
		{firstXid, []row{{"a.1", `{"n": 1}`, "acme"}, {"a.2", `{"s": "é"}`, "<nil>"}}},
		{0, []row{{"c.1", "{}", "<nil>"}}},
	}
	var prevEnd uint64
	for i, txn := range txns {
		if want[i].xid != 0 && uint64(txn.Xid) != want[i].xid&0xffffffff {
			t.Errorf("transaction %d: xid %d, want %d", i, txn.Xid, want[i].xid)
		}
		if txn.CommitLSN == 0 || txn.EndLSN <= txn.CommitLSN || txn.EndLSN <= prevEnd {
			t.Errorf("transaction %d: commit %s end %s after previous end %s", i,
				pglogrepl.LSN(txn.CommitLSN), pglogrepl.LSN(txn.EndLSN), pglogrepl.LSN(prevEnd))
		}
		prevEnd = txn.EndLSN
		if d := time.Since(txn.CommitTime); d < -time.Minute || d > time.Minute {
			t.Errorf("transaction %d: commit time %s", i, txn.CommitTime)
		}
		if len(txn.Changes) != len(want[i].rows) {
			t.Fatalf("transaction %d: %d changes, want %d", i, len(txn.Changes), len(want[i].rows))
		}
		for j, c := range txn.Changes {
			if c.Op != Insert || c.Rel.Namespace != "public" || c.Rel.Name != "outbox" {
				t.Errorf("transaction %d change %d: op %d on %s.%s", i, j, c.Op, c.Rel.Namespace, c.Rel.Name)
			}
			tenant := valueOf(t, c, "tenant_id")
			got := row{string(valueOf(t, c, "event_type")), string(valueOf(t, c, "payload")), string(tenant)}
			if tenant == nil {
				got.tenant = "<nil>"
			}
			if got != want[i].rows[j] {
				t.Errorf("transaction %d change %d: %+v, want %+v", i, j, got, want[i].rows[j])
			}
		}
	}
	select {
	case txn := <-h.got:
		t.Fatalf("unexpected transaction %d with %d changes", txn.Xid, len(txn.Changes))
	default:
	}
}

// A transactional logical message (walhook's heartbeat) arrives as a change
// of its transaction, its content intact although later messages of the
// transaction were received into the same buffer; a non-transactional one
// belongs to no transaction and is dropped.
func TestLogicalMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := newHandler()
	b.run(t, h, 0, Options{})

	b.exec(t, `SELECT pg_logical_emit_message(false, 'walhook-test', 'not transactional')`)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	tx, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT pg_logical_emit_message(true, 'walhook-heartbeat', 'beat-1')`,
		`INSERT INTO outbox (event_type, payload) SELECT 'e.' || i, jsonb_build_object('i', i, 'pad', repeat('z', 500)) FROM generate_series(1, 20) i`,
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	txn := h.next(t)
	if len(txn.Changes) != 21 {
		t.Fatalf("%d changes, want 21", len(txn.Changes))
	}
	if c := txn.Changes[0]; c.Op != Message || c.Rel != nil || c.Prefix != "walhook-heartbeat" || string(c.Content) != "beat-1" {
		t.Fatalf("first change %+v (content %q), want the heartbeat", c, c.Content)
	}
	for i, c := range txn.Changes[1:] {
		if got, want := string(valueOf(t, c, "event_type")), fmt.Sprintf("e.%d", i+1); got != want {
			t.Errorf("change %d: event type %q, want %q", i+1, got, want)
		}
	}
}

// The slot's confirmed position never passes what the handler calls
// durable, and follows it when it moves.
func TestConfirmedFollowsDurable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := newHandler()
	var confirms []uint64
	var confirmsMu sync.Mutex
	s, _ := b.run(t, h, 0, Options{OnConfirm: func(lsn uint64) {
		confirmsMu.Lock()
		confirms = append(confirms, lsn)
		confirmsMu.Unlock()
	}})
	b.waitState(t, "the stream to connect", func(st slotState) bool { return st.pid != 0 })

	b.insert(t, "t.1")
	b.insert(t, "t.2")
	b.insert(t, "t.3")
	t1, t2, t3 := h.next(t), h.next(t), h.next(t)
	_ = t2

	// Watch the slot all along: until durable is raised nothing of t1 may
	// be confirmed; then nothing past what durable says.
	var limit atomic.Uint64
	limit.Store(t1.EndLSN - 1)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan error, 1)
	stopWatching := sync.OnceValue(func() error { stopWatch(); return <-watchDone })
	defer stopWatching()
	conn := b.connect(t)
	go func() {
		for watchCtx.Err() == nil {
			var confirmed string
			if err := conn.QueryRow(watchCtx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, b.slot).Scan(&confirmed); err != nil {
				break
			}
			// Read the limit after the slot: it only grows.
			if lsn, _ := pglogrepl.ParseLSN(confirmed); uint64(lsn) > limit.Load() {
				watchDone <- fmt.Errorf("slot confirmed %s, beyond durable %s", lsn, pglogrepl.LSN(limit.Load()))
				return
			}
		}
		watchDone <- nil
	}()

	st := b.waitReplyAfter(t, time.Now())
	if st.confirmed >= t1.EndLSN || st.flush >= t1.EndLSN || s.Status().Confirmed >= t1.EndLSN {
		t.Fatalf("nothing is durable, yet slot confirmed %s (reply flush %s, stream %s); first transaction ends at %s",
			pglogrepl.LSN(st.confirmed), pglogrepl.LSN(st.flush), pglogrepl.LSN(s.Status().Confirmed), pglogrepl.LSN(t1.EndLSN))
	}

	limit.Store(t1.EndLSN)
	h.durable.Store(t1.EndLSN)
	b.waitState(t, "the slot to confirm the first transaction", func(st slotState) bool { return st.confirmed == t1.EndLSN })
	// A later status update still confirms no more: t2 and t3 are not durable.
	if st := b.waitReplyAfter(t, time.Now()); st.confirmed != t1.EndLSN {
		t.Fatalf("slot confirmed %s, durable is %s", pglogrepl.LSN(st.confirmed), pglogrepl.LSN(t1.EndLSN))
	}
	if err := stopWatching(); err != nil {
		t.Fatal(err)
	}

	// Everything durable: the slot reaches the last transaction (and may go
	// past it to the server's position, as nothing is in flight).
	h.durable.Store(t3.EndLSN)
	b.waitState(t, "the slot to confirm the last transaction", func(st slotState) bool { return st.confirmed >= t3.EndLSN })
	if st := s.Status(); st.Confirmed < t3.EndLSN || st.Received < st.Confirmed || !st.Connected {
		t.Fatalf("status %+v after confirming %s", st, pglogrepl.LSN(t3.EndLSN))
	}
	confirmsMu.Lock()
	defer confirmsMu.Unlock()
	for i := 1; i < len(confirms); i++ {
		if confirms[i] <= confirms[i-1] {
			t.Fatalf("OnConfirm went %s then %s", pglogrepl.LSN(confirms[i-1]), pglogrepl.LSN(confirms[i]))
		}
	}
}

// When its connection is killed the stream reconnects by itself; Postgres
// streams again what was not confirmed, and the stream skips what it had
// already handed over. A new Run (a restart) gets everything not durable.
func TestReconnectAfterTerminate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := newHandler()
	s, stop := b.run(t, h, 0, Options{})

	b.insert(t, "t.1")
	b.insert(t, "t.2")
	t1, t2 := h.next(t), h.next(t)
	h.durable.Store(t1.EndLSN) // t2 handed over, not durable
	before := b.waitState(t, "the slot to confirm the first transaction", func(st slotState) bool {
		return st.confirmed == t1.EndLSN && st.pid != 0
	})

	b.exec(t, `SELECT pg_terminate_backend($1)`, before.pid)
	b.waitState(t, "a new walsender", func(st slotState) bool { return st.pid != 0 && st.pid != before.pid })
	b.insert(t, "t.3")
	// t2 was streamed again before t3; had it not been skipped it would be
	// the next one.
	t3 := h.next(t)
	if got := string(valueOf(t, t3.Changes[0], "event_type")); got != "t.3" {
		t.Fatalf("after reconnect got %q (end %s), want t.3; t2 ended at %s", got, pglogrepl.LSN(t3.EndLSN), pglogrepl.LSN(t2.EndLSN))
	}
	if !s.Status().Connected {
		t.Fatal("status says disconnected after handing over a transaction")
	}

	// Restart from what is durable: t2 and t3 come again, the same.
	stop()
	h2 := newHandler()
	h2.durable.Store(t1.EndLSN)
	b.run(t, h2, t1.EndLSN, Options{})
	for _, want := range []*Txn{t2, t3} {
		got := h2.next(t)
		if got.EndLSN != want.EndLSN || got.CommitLSN != want.CommitLSN || got.Xid != want.Xid ||
			string(valueOf(t, got.Changes[0], "event_type")) != string(valueOf(t, want.Changes[0], "event_type")) {
			t.Fatalf("after restart got transaction %d ending %s, want %d ending %s",
				got.Xid, pglogrepl.LSN(got.EndLSN), want.Xid, pglogrepl.LSN(want.EndLSN))
		}
	}
	b.insert(t, "t.4")
	if got := string(valueOf(t, h2.next(t).Changes[0], "event_type")); got != "t.4" {
		t.Fatalf("got %q, want t.4", got)
	}
}

// A handler error closes the replication connection (a walsender left
// unread would hold up a fast shutdown of Postgres), waits for Ready, and
// the same transaction is handed over again.
func TestHandlerErrorRetriesTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := newHandler()
	h.autoDurable = true
	var failed atomic.Bool
	h.fail = func(*Txn) error {
		if failed.CompareAndSwap(false, true) {
			return errors.New("recorder unavailable")
		}
		return nil
	}
	readyCalled := make(chan struct{}, 10)
	release := make(chan struct{})
	h.ready = func(ctx context.Context) error {
		if !failed.Load() {
			return nil
		}
		readyCalled <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s, _ := b.run(t, h, 0, Options{})

	b.insert(t, "t.1")
	first := h.next(t)
	select {
	case <-readyCalled:
	case <-time.After(waitFor):
		t.Fatal("Ready was not called after the handler failed")
	}
	// While the handler is not ready, nothing holds the slot.
	b.waitState(t, "the walsender to go", func(st slotState) bool { return st.pid == 0 })
	if s.Status().Connected {
		t.Fatal("status says connected while waiting for the handler")
	}
	close(release)

	again := h.next(t)
	if again.EndLSN != first.EndLSN || again.Xid != first.Xid || len(again.Changes) != 1 ||
		string(valueOf(t, again.Changes[0], "event_type")) != "t.1" {
		t.Fatalf("after the error got transaction %d ending %s, want %d ending %s again",
			again.Xid, pglogrepl.LSN(again.EndLSN), first.Xid, pglogrepl.LSN(first.EndLSN))
	}
	b.insert(t, "t.2")
	second := h.next(t)
	if got := string(valueOf(t, second.Changes[0], "event_type")); got != "t.2" {
		t.Fatalf("got %q, want t.2", got)
	}
	b.waitState(t, "the slot to confirm both", func(st slotState) bool { return st.confirmed >= second.EndLSN })
}

// Streams are parameterised by slot and publications: two of them on one
// database see only their own tables.
func TestStreamsAreIndependent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pgtest.Exec(t, b.dsn, `CREATE TABLE other (id int PRIMARY KEY, v text)`)
	pgtest.Exec(t, b.dsn, `CREATE PUBLICATION other_pub FOR TABLE other`)
	other := &bundle{dsn: b.dsn, slot: b.slot + "_other", pub: "other_pub", conn: b.conn}
	pgtest.Exec(t, b.dsn, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, other.slot)

	h, ho := newHandler(), newHandler()
	b.run(t, h, 0, Options{})
	other.run(t, ho, 0, Options{})
	b.exec(t, `WITH o AS (INSERT INTO outbox (event_type, payload) VALUES ('x', '{}')) INSERT INTO other VALUES (1, 'y')`)

	got, gotOther := h.next(t), ho.next(t)
	if len(got.Changes) != 1 || got.Changes[0].Rel.Name != "outbox" {
		t.Errorf("outbox stream got %d changes, first on %s", len(got.Changes), got.Changes[0].Rel.Name)
	}
	if len(gotOther.Changes) != 1 || gotOther.Changes[0].Rel.Name != "other" || string(valueOf(t, gotOther.Changes[0], "v")) != "y" {
		t.Errorf("other stream got %d changes, first on %s", len(gotOther.Changes), gotOther.Changes[0].Rel.Name)
	}
	if got.EndLSN != gotOther.EndLSN {
		t.Errorf("one transaction, two end LSNs: %s and %s", pglogrepl.LSN(got.EndLSN), pglogrepl.LSN(gotOther.EndLSN))
	}
}

func TestRunReturnsPromptlyWhenCancelledBetweenStatusUpdates(t *testing.T) {
	// The loop waits on the connection's read deadline, armed once per
	// status interval: cancelling must cut that wait, not outlast it.
	t.Parallel()
	b := setup(t)
	h := newHandler()
	_, stop := b.run(t, h, 0, Options{StatusInterval: time.Hour})
	b.exec(t, `INSERT INTO outbox (event_type, payload) VALUES ('x', '{}')`)
	h.next(t) // streaming, and now idle in the read
	start := time.Now()
	stop() // cancels, waits for Run and for the walsender to leave
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %s to return after cancel; the status interval is an hour", took)
	}
}

// TestReadsAheadWhileTheHandlerIsBusy: while the handler works on one
// transaction, the stream goes on receiving the next ones up to its
// read-ahead bound (so the server decodes on), and stops reading at the
// bound; everything is still handed over once, in commit order. Its status
// shows where what waits is, in memory or in the spill.
func TestReadsAheadWhileTheHandlerIsBusy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		readAhead int64
		spill     int64
		ahead     bool
	}{
		{"within its bound it reads on", 1 << 20, 0, true},
		{"at its bound it stops reading", 1, 0, false},
		{"past its bound it reads on into its spill", 1, 1 << 20, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			h := newHandler()
			h.autoDurable = true
			release := make(chan struct{})
			var releaseOnce sync.Once
			let := func() { releaseOnce.Do(func() { close(release) }) }
			h.fail = func(*Txn) error { <-release; return nil }
			s, _ := b.run(t, h, 0, Options{ReadAhead: tt.readAhead, Spill: tt.spill, SpillDir: t.TempDir()})
			t.Cleanup(let) // before the stream is stopped: a held handler would hold it

			// before[i]: the WAL position before transaction i was made.
			var before [5]uint64
			for i := range before {
				var lsn string
				if err := b.conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
					t.Fatal(err)
				}
				before[i] = parseLSN(t, lsn)
				b.insert(t, fmt.Sprintf("t.%d", i))
			}
			h.next(t) // the first, which the handler now holds
			if tt.ahead {
				deadline := time.Now().Add(waitFor)
				for s.Status().Received <= before[4] {
					if time.Now().After(deadline) {
						t.Fatalf("received up to %s while the handler was busy; the last transaction starts after %s",
							pglogrepl.LSN(s.Status().Received), pglogrepl.LSN(before[4]))
					}
					time.Sleep(5 * time.Millisecond)
				}
				// Memory takes one transaction past its bound when it holds
				// none; the spill takes the rest.
				st := s.Status()
				if st.ReadAheadBytes == 0 || (st.SpillBytes > 0) != (tt.spill > 0) || st.SpilledBytes != st.SpillBytes {
					t.Fatalf("waiting: %d bytes in memory, %d in the spill (%d ever written); want some in memory, and in the spill: %v",
						st.ReadAheadBytes, st.SpillBytes, st.SpilledBytes, tt.spill > 0)
				}
			} else {
				// Not reading on can only be seen over a while: ten status
				// intervals, in which the other case reads all five.
				time.Sleep(10 * 20 * time.Millisecond)
				if got := s.Status().Received; got > before[2] {
					t.Fatalf("received up to %s with a full read-ahead; the second transaction ends at %s",
						pglogrepl.LSN(got), pglogrepl.LSN(before[2]))
				}
			}
			let()
			for i := 1; i < len(before); i++ {
				if got := string(valueOf(t, h.next(t).Changes[0], "event_type")); got != fmt.Sprintf("t.%d", i) {
					t.Fatalf("transaction %d handed over as %q", i, got)
				}
			}
			waitfor.True(t, "nothing waiting once all is handed over", waitFor, func() bool {
				st := s.Status() // in the same session: a new one starts from nothing
				return st.Connected && st.ReadAheadBytes == 0 && st.SpillBytes == 0
			})
		})
	}
}

func TestReadAheadBounds(t *testing.T) {
	small := func() *Txn { return &Txn{size: 100} } // counts as minTxnBytes
	ra := newReadAhead(3 * minTxnBytes)
	for i := range 3 {
		if !ra.fits(small()) {
			t.Fatalf("transaction %d does not fit under the bound", i+1)
		}
		ra.push(small())
	}
	if ra.fits(small()) {
		t.Fatal("a fourth transaction fits past the bound")
	}
	popped := <-ra.q
	ra.pop(popped, false)
	select {
	case <-ra.room:
	default:
		t.Fatal("taking a transaction does not signal room")
	}
	if !ra.fits(small()) {
		t.Fatal("no room after one was taken")
	}
	for len(ra.q) > 0 {
		ra.pop(<-ra.q, false)
	}
	if huge := (&Txn{size: 10 * minTxnBytes}); !ra.fits(huge) {
		t.Fatal("a transaction larger than the bound does not pass an empty queue")
	} else if ra.push(huge); ra.fits(small()) {
		t.Fatal("something fits behind a transaction larger than the bound")
	}

	if got := cap(newReadAhead(1 << 30).q); got != maxReadAheadTxns {
		t.Fatalf("a 1 GiB read-ahead has room for %d transactions, want %d", got, maxReadAheadTxns)
	}
}
