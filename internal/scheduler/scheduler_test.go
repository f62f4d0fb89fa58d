package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/recorder"
	"github.com/walhook/walhook/internal/retry"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/scheduler"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

type submission struct {
	job *delivery.Job
	at  time.Time
}

// submitter stands in for the dispatcher: it records jobs and says whether
// an endpoint accepts deliveries.
type submitter struct {
	mu      sync.Mutex
	jobs    []submission
	refused map[string]bool
}

func (s *submitter) Submit(j *delivery.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, submission{j, time.Now()})
}

func (s *submitter) Room(endpointID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused[endpointID] {
		return 0
	}
	return 10000
}

func (s *submitter) refuse(endpointID string, refused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[endpointID] = refused
}

func (s *submitter) submitted() []submission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]submission(nil), s.jobs...)
}

func (s *submitter) ids() []string {
	var out []string
	for _, sub := range s.submitted() {
		out = append(out, sub.job.DeliveryID)
	}
	return out
}

func (s *submitter) count(id string) int {
	n := 0
	for _, got := range s.ids() {
		if got == id {
			n++
		}
	}
	return n
}

// sink records results the scheduler decides by itself (endpoint gone).
type sink struct {
	mu      sync.Mutex
	results []delivery.Result
}

func (s *sink) Result(r delivery.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results = append(s.results, r)
}

// Park and Health are the dispatcher's to call, never the scheduler's.
func (s *sink) Park(endpointID, deliveryID string) {
	s.Result(delivery.Result{Delivery: store.Delivery{ID: "unexpected park of " + deliveryID}})
}

func (s *sink) Health(h store.EndpointHealth) {
	s.Result(delivery.Result{Delivery: store.Delivery{ID: "unexpected health of " + h.EndpointID}})
}

func (s *sink) all() []delivery.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.results)
}

func (s *sink) count() int { return len(s.all()) }

type bundle struct {
	sched  *scheduler.Scheduler
	st     *store.Store
	router *route.Router
	sub    *submitter
	sink   *sink
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	st, err := store.Open(ctx, db.DSN, "walhook", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// setup makes a scheduler on a fresh database with a fine tick.
func setup(t *testing.T, mutate func(*scheduler.Options)) *bundle {
	t.Helper()
	b := &bundle{st: openStore(t), router: route.NewRouter(), sub: &submitter{refused: map[string]bool{}}, sink: &sink{}}
	opts := scheduler.Options{Store: b.st, Router: b.router, Dispatcher: b.sub, Sink: b.sink, Tick: 10 * time.Millisecond}
	if mutate != nil {
		mutate(&opts)
	}
	b.sched = scheduler.New(opts)
	return b
}

// run runs the scheduler until the test ends.
func (b *bundle) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.sched.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func (b *bundle) load(t *testing.T) int {
	t.Helper()
	n, err := b.sched.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *bundle) endpoint(t *testing.T, id string, active bool) {
	t.Helper()
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.router.Upsert(&store.Endpoint{ID: id, URL: "https://example.com/" + id, Secret: secret, Active: active, EventTypes: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
}

// row is a delivery to insert, with its event.
type row struct {
	id, endpoint string
	status       store.Status
	attempts     int
	due          time.Time // next_retry_at; zero: NULL
	created      time.Time // zero: a minute ago
}

var base = time.Now().Truncate(time.Second)

func (b *bundle) insert(t *testing.T, rows ...row) {
	t.Helper()
	var batch store.Batch
	for i, r := range rows {
		created := r.created
		if created.IsZero() {
			created = time.Now().Add(-time.Minute)
		}
		created = created.UTC().Truncate(time.Microsecond)
		batch.Events = append(batch.Events, store.Event{ID: "evt_" + r.id, Type: "order.created", Payload: []byte(fmt.Sprintf(`{"n":%d,"id":%q}`, i, r.id)),
			LSN: uint64(i + 1), CreatedAt: created, ReceivedAt: created})
		batch.Deliveries = append(batch.Deliveries, store.Delivery{ID: r.id, EndpointID: r.endpoint, EventID: "evt_" + r.id, EventType: "order.created",
			Status: r.status, Attempts: r.attempts, MaxAttempts: 5, NextRetryAt: r.due, CreatedAt: created, UpdatedAt: created})
	}
	if err := b.st.WriteBatch(context.Background(), &batch); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.st.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func TestLoadIndexesUnfinishedDeliveries(t *testing.T) {
	b := setup(t, nil)
	b.endpoint(t, "ep_a", true)
	created := base.Add(-time.Hour)
	b.insert(t,
		row{id: "d_pending", endpoint: "ep_a", status: store.StatusPending, created: created},
		row{id: "d_overdue", endpoint: "ep_a", status: store.StatusRetrying, attempts: 2, due: base.Add(-time.Minute), created: created},
		row{id: "d_later", endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: base.Add(time.Hour), created: created},
		row{id: "d_delivered", endpoint: "ep_a", status: store.StatusDelivered, attempts: 1, created: created},
		row{id: "d_failed", endpoint: "ep_a", status: store.StatusFailed, attempts: 5, created: created},
	)
	if n := b.load(t); n != 3 || b.sched.Len() != 3 {
		t.Fatalf("loaded %d (len %d), want the 3 pending or retrying", n, b.sched.Len())
	}
	b.run(t)
	waitfor.True(t, "the 2 due deliveries", 10*time.Second, func() bool { return len(b.sub.submitted()) == 2 })
	got := map[string]*delivery.Job{}
	for _, s := range b.sub.submitted() {
		got[s.job.DeliveryID] = s.job
	}
	ep, _ := b.router.Table().Get("ep_a")
	for id, wantAttempt := range map[string]int{"d_pending": 1, "d_overdue": 3} {
		j := got[id]
		if j == nil {
			t.Fatalf("%s not released; got %v", id, b.sub.ids())
		}
		var payload map[string]any
		if err := json.Unmarshal(j.Payload, &payload); err != nil || payload["id"] != id {
			t.Errorf("%s: payload %s (%v)", id, j.Payload, err)
		}
		// A first attempt carries the event's time for the end-to-end
		// latency; a retry does not (that histogram is of first attempts).
		wantCommit := time.Time{}
		if wantAttempt == 1 {
			wantCommit = created
		}
		if j.Endpoint != ep || j.EventID != "evt_"+id || j.EventType != "order.created" || !j.EventTime.Equal(created) ||
			j.Attempt != wantAttempt || j.MaxAttempts != 5 || !j.CommitTime.Equal(wantCommit) {
			t.Errorf("%s: job %+v; want attempt %d of 5 for ep_a, event time %v, commit time %v", id, j, wantAttempt, created, wantCommit)
		}
	}
	if n := b.sched.Len(); n != 1 {
		t.Fatalf("%d left in the wheel, want d_later", n)
	}
}

func TestDueDeliveriesAreReleasedOnTimeNeverEarly(t *testing.T) {
	b := setup(t, nil)
	b.endpoint(t, "ep_a", true)
	now := time.Now()
	due := map[string]time.Time{
		"d_loaded1":    now.Add(300 * time.Millisecond),
		"d_loaded2":    now.Add(700 * time.Millisecond),
		"d_scheduled1": now.Add(500 * time.Millisecond),
		"d_scheduled2": now.Add(900 * time.Millisecond),
	}
	add := func(ids ...string) {
		for _, id := range ids {
			b.insert(t, row{id: id, endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: due[id]})
		}
	}
	add("d_loaded1", "d_loaded2")
	if n := b.load(t); n != 2 {
		t.Fatalf("loaded %d", n)
	}
	b.run(t)
	add("d_scheduled1", "d_scheduled2")
	for _, id := range []string{"d_scheduled1", "d_scheduled2"} {
		b.sched.Schedule(id, due[id])
	}
	waitfor.True(t, "4 releases", 10*time.Second, func() bool { return len(b.sub.submitted()) == 4 })
	subs := b.sub.submitted()
	for i, s := range subs {
		id := s.job.DeliveryID
		// The stored due time is truncated to microseconds, never later.
		if s.at.Before(due[id].Truncate(time.Microsecond)) {
			t.Errorf("%s released %s early", id, due[id].Sub(s.at))
		}
		if late := s.at.Sub(due[id]); late > time.Second {
			t.Errorf("%s released %s late", id, late)
		}
		if i > 0 && due[subs[i-1].job.DeliveryID].After(due[id]) {
			t.Errorf("released out of order: %v", b.sub.ids())
		}
	}
}

func TestStaleEntriesAreSkipped(t *testing.T) {
	b := setup(t, nil)
	b.endpoint(t, "ep_a", true)
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name   string
		id     string
		change string // SQL run after Load, with $1 = id
	}{
		{"delivered meanwhile", "d_delivered", `UPDATE deliveries SET status = 'delivered', next_retry_at = NULL WHERE id = $1`},
		{"failed meanwhile", "d_failed", `UPDATE deliveries SET status = 'failed', next_retry_at = NULL WHERE id = $1`},
		{"rescheduled later", "d_later", `UPDATE deliveries SET next_retry_at = now() + interval '1 hour' WHERE id = $1`},
		{"deleted", "d_deleted", `DELETE FROM deliveries WHERE id = $1`},
	}
	rows := []row{{id: "d_sentinel", endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: past.Add(time.Second)}}
	for _, tt := range tests {
		rows = append(rows, row{id: tt.id, endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: past})
	}
	b.insert(t, rows...)
	if n := b.load(t); n != len(rows) {
		t.Fatalf("loaded %d, want %d", n, len(rows))
	}
	for _, tt := range tests {
		b.exec(t, tt.change, tt.id)
	}
	// Rescheduled sooner: the stale entry is skipped, the new one released once, on time.
	b.insert(t, row{id: "d_sooner", endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: past})
	b.sched.Schedule("d_sooner", past)
	soon := time.Now().Add(400 * time.Millisecond)
	b.exec(t, `UPDATE deliveries SET next_retry_at = $2 WHERE id = $1`, "d_sooner", soon)
	b.sched.Schedule("d_sooner", soon)

	b.run(t)
	waitfor.True(t, "the sentinel and the rescheduled delivery", 10*time.Second, func() bool {
		return b.sub.count("d_sentinel") == 1 && b.sub.count("d_sooner") == 1
	})
	for _, s := range b.sub.submitted() {
		if s.job.DeliveryID == "d_sooner" && s.at.Before(soon.Truncate(time.Microsecond)) {
			t.Errorf("d_sooner released %s before its new time", soon.Sub(s.at))
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := b.sub.count(tt.id); n != 0 {
				t.Fatalf("stale %s released %d times", tt.id, n)
			}
		})
	}
	if n := b.sink.count(); n != 0 {
		t.Fatalf("stale entries produced results: %+v", b.sink.all())
	}
}

func TestRateBoundsTheOverdueBacklog(t *testing.T) {
	const rate, backlog = 10, 25
	b := setup(t, func(o *scheduler.Options) { o.Rate, o.Batch = rate, 4 })
	b.endpoint(t, "ep_a", true)
	var rows []row
	for i := 0; i < backlog; i++ {
		rows = append(rows, row{id: fmt.Sprintf("d_%02d", i), endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: time.Now().Add(-time.Hour)})
	}
	b.insert(t, rows...)
	b.load(t)
	start := time.Now()
	b.run(t)
	waitfor.True(t, "the whole backlog", 20*time.Second, func() bool { return len(b.sub.submitted()) == backlog })
	subs := b.sub.submitted()
	sort.Slice(subs, func(i, j int) bool { return subs[i].at.Before(subs[j].at) })
	const slack = 100 * time.Millisecond
	for i := 0; i+rate < len(subs); i++ {
		if gap := subs[i+rate].at.Sub(subs[i].at); gap < time.Second-slack {
			t.Fatalf("releases %d and %d only %s apart: more than %d in a second", i, i+rate, gap, rate)
		}
	}
	if took := subs[len(subs)-1].at.Sub(start); took < 2*time.Second-slack || took > 5*time.Second {
		t.Fatalf("released %d overdue at %d/s in %s; want about 2s", backlog, rate, took)
	}
	if ids := b.sub.ids(); len(ids) != backlog || len(uniq(ids)) != backlog {
		t.Fatalf("released %v", ids)
	}
}

func uniq(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestParkHoldsUntilTheEndpointCanTake(t *testing.T) {
	b := setup(t, nil)
	b.run(t)
	past := time.Now().Add(-time.Minute)
	due := func(ids ...string) {
		for _, id := range ids {
			b.insert(t, row{id: id, endpoint: "ep_" + id, status: store.StatusRetrying, attempts: 1, due: past})
		}
	}
	sentinel := 0
	// flush proves that everything released before it was dispatched: a
	// delivery made due now is released after the ones already due.
	flush := func(t *testing.T) {
		t.Helper()
		sentinel++
		id := fmt.Sprintf("d_flush%d", sentinel)
		b.endpoint(t, "ep_"+id, true)
		due(id)
		b.sched.Schedule(id, past)
		waitfor.True(t, id, 10*time.Second, func() bool { return b.sub.count(id) == 1 })
	}

	t.Run("not accepting: held until Resume", func(t *testing.T) {
		b.endpoint(t, "ep_p1", true)
		b.sub.refuse("ep_p1", true)
		due("p1")
		b.sched.Park("ep_p1", "p1")
		flush(t)
		if b.sub.count("p1") != 0 || b.sched.Parked() != 1 {
			t.Fatalf("released %d times, parked %d; want held", b.sub.count("p1"), b.sched.Parked())
		}
		b.sub.refuse("ep_p1", false)
		b.sched.Resume("ep_p1", 0)
		waitfor.True(t, "p1 released", 10*time.Second, func() bool { return b.sub.count("p1") == 1 })
		if b.sched.Parked() != 0 {
			t.Fatalf("%d still parked", b.sched.Parked())
		}
	})
	t.Run("paused endpoint: held until it is resumed", func(t *testing.T) {
		b.endpoint(t, "ep_p2", false)
		due("p2")
		b.sched.Park("ep_p2", "p2")
		b.sched.EndpointChanged("ep_p2") // still paused
		flush(t)
		if b.sub.count("p2") != 0 || b.sched.Parked() != 1 {
			t.Fatalf("released %d times, parked %d; want held", b.sub.count("p2"), b.sched.Parked())
		}
		b.endpoint(t, "ep_p2", true)
		b.sched.EndpointChanged("ep_p2")
		waitfor.True(t, "p2 released", 10*time.Second, func() bool { return b.sub.count("p2") == 1 })
	})
	t.Run("an endpoint that can take it gets it at once", func(t *testing.T) {
		b.endpoint(t, "ep_p3", true)
		due("p3")
		b.sched.Park("ep_p3", "p3")
		if n := b.sched.Parked(); n != 0 {
			t.Fatalf("%d parked", n)
		}
		waitfor.True(t, "p3 released", 10*time.Second, func() bool { return b.sub.count("p3") == 1 })
	})
	t.Run("Resume(n) releases n", func(t *testing.T) {
		b.endpoint(t, "ep_p4", true)
		b.sub.refuse("ep_p4", true)
		ids := []string{"p4a", "p4b", "p4c"}
		for _, id := range ids {
			b.insert(t, row{id: id, endpoint: "ep_p4", status: store.StatusRetrying, attempts: 1, due: past})
			b.sched.Park("ep_p4", id)
		}
		b.sched.Resume("ep_p4", 1)
		waitfor.True(t, "one released", 10*time.Second, func() bool { return b.sub.count("p4a") == 1 })
		flush(t)
		if n := b.sched.Parked(); n != 2 || b.sub.count("p4b")+b.sub.count("p4c") != 0 {
			t.Fatalf("after Resume(1): %d parked, released %v", n, b.sub.ids())
		}
		b.sched.Resume("ep_p4", 0)
		waitfor.True(t, "the rest released", 10*time.Second, func() bool { return b.sub.count("p4b") == 1 && b.sub.count("p4c") == 1 })
	})
	t.Run("a due delivery of a paused endpoint is parked, not sent", func(t *testing.T) {
		b.endpoint(t, "ep_p5", false)
		due("p5")
		b.sched.Schedule("p5", past)
		waitfor.True(t, "p5 parked", 10*time.Second, func() bool { return b.sched.Parked() == 1 })
		if n := b.sub.count("p5"); n != 0 {
			t.Fatalf("sent %d times to a paused endpoint", n)
		}
		b.endpoint(t, "ep_p5", true)
		b.sched.EndpointChanged("ep_p5")
		waitfor.True(t, "p5 released", 10*time.Second, func() bool { return b.sub.count("p5") == 1 })
	})
	if n := b.sink.count(); n != 0 {
		t.Fatalf("results recorded: %+v", b.sink.all())
	}
}

func TestDeletedEndpointsDeliveryFailsWithoutAnAttempt(t *testing.T) {
	b := setup(t, nil)
	// The real recorder, so the test sees what reaches the store.
	rec := recorder.New(recorder.Options{Store: b.st})
	ctx, cancel := context.WithCancel(context.Background())
	recDone := make(chan struct{})
	go func() { defer close(recDone); rec.Run(ctx) }()
	defer func() { cancel(); <-recDone }()
	b.sched = scheduler.New(scheduler.Options{Store: b.st, Router: b.router, Dispatcher: b.sub, Sink: rec, Tick: 10 * time.Millisecond})

	past := time.Now().Add(-time.Minute)
	b.insert(t, row{id: "d_gone_due", endpoint: "ep_gone", status: store.StatusRetrying, attempts: 2, due: past})
	b.load(t)
	b.run(t)
	b.insert(t, row{id: "d_gone_parked", endpoint: "ep_gone2", status: store.StatusPending})
	b.sched.Park("ep_gone2", "d_gone_parked") // deleted by the time it is parked: released to fail at once
	for _, tt := range []struct {
		id       string
		attempts int
	}{{"d_gone_due", 2}, {"d_gone_parked", 0}} {
		var d *store.Delivery
		waitfor.True(t, tt.id+" failed", 10*time.Second, func() bool {
			var err error
			d, err = b.st.GetDelivery(context.Background(), tt.id)
			return err == nil && d.Status == store.StatusFailed
		})
		if d.Attempts != tt.attempts || d.LastError != "endpoint deleted; not attempted" || !d.NextRetryAt.IsZero() || d.LastStatusCode != 0 {
			t.Errorf("%s: %+v; want failed with its %d attempts, no retry, the reason", tt.id, d, tt.attempts)
		}
		atts, err := b.st.ListAttempts(context.Background(), tt.id)
		if err != nil || len(atts) != 0 {
			t.Errorf("%s: attempt rows %+v (%v); want none", tt.id, atts, err)
		}
	}
	if ids := b.sub.ids(); len(ids) != 0 || b.sched.Parked() != 0 {
		t.Fatalf("submitted %v, parked %d", ids, b.sched.Parked())
	}
}

func TestRescanFindsRequeuedDeliveries(t *testing.T) {
	b := setup(t, nil)
	b.endpoint(t, "ep_a", true)
	b.insert(t,
		row{id: "d_failed", endpoint: "ep_a", status: store.StatusFailed, attempts: 5},
		row{id: "d_sentinel", endpoint: "ep_a", status: store.StatusRetrying, attempts: 1, due: time.Now().Add(time.Hour)},
	)
	b.load(t)
	b.run(t)
	ctx := context.Background()
	if _, err := b.st.RetryDelivery(ctx, "d_failed", nil); err != nil {
		t.Fatal(err)
	}
	// Re-queued in the store only: the wheel does not know it until a rescan.
	b.exec(t, `UPDATE deliveries SET next_retry_at = now() WHERE id = 'd_sentinel'`)
	b.sched.Schedule("d_sentinel", time.Now())
	waitfor.True(t, "the sentinel", 10*time.Second, func() bool { return b.sub.count("d_sentinel") == 1 })
	if n := b.sub.count("d_failed"); n != 0 {
		t.Fatalf("re-queued delivery released %d times before any rescan", n)
	}
	b.exec(t, `UPDATE deliveries SET status = 'delivered', next_retry_at = NULL WHERE id = 'd_sentinel'`) // as its result would
	b.sched.Rescan()
	waitfor.True(t, "the re-queued delivery", 10*time.Second, func() bool { return b.sub.count("d_failed") == 1 })
	for _, s := range b.sub.submitted() {
		if j := s.job; j.DeliveryID == "d_failed" && (j.Attempt != 6 || j.MaxAttempts != 6) {
			t.Fatalf("re-queued job attempt %d of %d, want one more: 6 of 6", j.Attempt, j.MaxAttempts)
		}
	}
	if got := b.sub.ids(); !reflect.DeepEqual(got, []string{"d_sentinel", "d_failed"}) {
		t.Fatalf("released %v", got)
	}
}

// resumerRef breaks the construction cycle dispatcher → scheduler → dispatcher.
type resumerRef struct{ s **scheduler.Scheduler }

func (r resumerRef) Resume(endpointID string, n int) { (*r.s).Resume(endpointID, n) }
func (r resumerRef) Parked() int                     { return (*r.s).Parked() }

func TestParkArrivingAfterTheCooldownIsReleasedAsTheProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusInternalServerError)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	b := setup(t, nil)
	secret, _ := signature.NewSecret()
	if err := b.router.Upsert(&store.Endpoint{ID: "ep_cb", URL: srv.URL, Secret: secret, Active: true, EventTypes: []string{"*"}, RetryClientErrors: true}); err != nil {
		t.Fatal(err)
	}
	ep, _ := b.router.Table().Get("ep_cb")
	dsink := &sink{}
	disp := delivery.New(delivery.Options{
		Workers: 4, EndpointInflight: 1, Timeout: 5 * time.Second, BodyLimit: 100,
		Policy:  retry.Policy{Schedule: []time.Duration{time.Hour}, MaxAttempts: 10},
		Breaker: delivery.Breaker{Failures: 1, Cooldown: 100 * time.Millisecond, MaxCooldown: 100 * time.Millisecond},
		Resumer: resumerRef{&b.sched}, Network: netguard.Policy{AllowPrivate: true},
	}, dsink)
	defer disp.Stop(time.Second)
	b.sched = scheduler.New(scheduler.Options{Store: b.st, Router: b.router, Dispatcher: disp, Sink: b.sink, Tick: 10 * time.Millisecond})
	b.run(t)

	// One failure opens the circuit; nothing is parked in the scheduler when
	// the cooldown ends, so the probe Resume finds nothing to release.
	disp.Submit(&delivery.Job{DeliveryID: "d_first", Endpoint: ep, EventType: "order.created", Payload: []byte(`{}`), Attempt: 1, MaxAttempts: 10})
	waitfor.True(t, "the circuit to be half-open", 10*time.Second, func() bool { return disp.Circuits()["ep_cb"] == "half-open" })

	// A delivery the dispatcher parked while the circuit was open reaches the
	// scheduler only now (the recorder forwards parks after its commit).
	b.insert(t, row{id: "d_late", endpoint: "ep_cb", status: store.StatusRetrying, attempts: 1, due: time.Now().Add(-time.Minute)})
	b.sched.Park("ep_cb", "d_late")
	status.Store(http.StatusOK)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range dsink.all() {
			if r.Delivery.ID == "d_late" {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("d_late was never attempted: %d parked in the scheduler, circuit %q; "+
		"a half-open endpoint with no probe under way waits for a Resume that never comes", b.sched.Parked(), disp.Circuits()["ep_cb"])
}

func TestRescanFindsRowsDueByTheDatabaseClock(t *testing.T) {
	// walhook's clock is a second behind the database's (another host).
	b := setup(t, func(o *scheduler.Options) { o.Now = func() time.Time { return time.Now().Add(-time.Second) } })
	b.endpoint(t, "ep_a", true)
	b.insert(t, row{id: "d_failed", endpoint: "ep_a", status: store.StatusFailed, attempts: 5})
	b.load(t)
	b.run(t)
	if _, err := b.st.RetryDelivery(context.Background(), "d_failed", nil); err != nil {
		t.Fatal(err)
	}
	b.sched.Rescan()
	waitfor.True(t, "the re-queued delivery (due by the database's clock a second ahead)", 5*time.Second, func() bool {
		return b.sub.count("d_failed") == 1
	})
}

func TestResumedWindowsAreOldestFirstAndNeverOvershoot(t *testing.T) {
	past := base.Add(-time.Minute)
	t.Run("a window on its way counts against the next", func(t *testing.T) {
		b := setup(t, nil) // not running yet: what Resume releases stays on its way
		b.endpoint(t, "ep_w", true)
		b.sub.refuse("ep_w", true)
		var ids []string
		for i := range 5 {
			id := fmt.Sprintf("w%d", i)
			ids = append(ids, id)
			b.insert(t, row{id: id, endpoint: "ep_w", status: store.StatusPending, due: past})
			b.sched.Park("ep_w", id)
		}
		b.sched.Resume("ep_w", 2)
		b.sched.Resume("ep_w", 2) // the lane still has room for 2: the same 2
		if n := b.sched.Parked(); n != 3 {
			t.Fatalf("%d parked after two Resume(2) before any release; want 3", n)
		}
		b.run(t)
		waitfor.True(t, "the window submitted", 10*time.Second, func() bool { return len(b.sub.ids()) == 2 })
		if got := b.sub.ids(); fmt.Sprint(got) != fmt.Sprint(ids[:2]) {
			t.Fatalf("submitted %v, want the oldest two %v", got, ids[:2])
		}
		b.sched.Resume("ep_w", 2) // submitted: no longer on its way
		waitfor.True(t, "the next window", 10*time.Second, func() bool { return len(b.sub.ids()) == 4 })
		if got := b.sub.ids(); fmt.Sprint(got) != fmt.Sprint(ids[:4]) {
			t.Fatalf("submitted %v, want %v", got, ids[:4])
		}
	})
	t.Run("a window that submits nothing pulls the next itself", func(t *testing.T) {
		b := setup(t, func(o *scheduler.Options) { o.Window = 2 })
		b.endpoint(t, "ep_s", true)
		b.sub.refuse("ep_s", true)
		// Two already delivered (found finished when read back), then two due.
		b.insert(t, row{id: "s0", endpoint: "ep_s", status: store.StatusDelivered, attempts: 1},
			row{id: "s1", endpoint: "ep_s", status: store.StatusDelivered, attempts: 1},
			row{id: "s2", endpoint: "ep_s", status: store.StatusPending, due: past},
			row{id: "s3", endpoint: "ep_s", status: store.StatusPending, due: past})
		for _, id := range []string{"s0", "s1", "s2", "s3"} {
			b.sched.Park("ep_s", id)
		}
		b.run(t)
		b.sub.refuse("ep_s", false)
		b.sched.Resume("ep_s", 0) // a window of 2: both finished, nothing submitted
		waitfor.True(t, "s2 and s3 submitted without another Resume", 10*time.Second, func() bool {
			return b.sub.count("s2") == 1 && b.sub.count("s3") == 1
		})
		if n := b.sub.count("s0") + b.sub.count("s1"); n != 0 {
			t.Fatalf("finished deliveries submitted %d times", n)
		}
	})
}
