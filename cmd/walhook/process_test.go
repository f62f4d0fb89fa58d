package main_test

// Fault tests of the real binary: walhook runs as a child process against a
// real Postgres and delivers to a real HTTP receiver; the tests kill it,
// restart Postgres under it and stop it with SIGTERM, and count at the
// receiver, against the committed outbox rows, that nothing was lost.
//
// The default `go test` runs them in full (20,000 events, 5 kills). Set
// WALHOOK_TEST_CRASH_EVENTS and WALHOOK_TEST_CRASH_KILLS to run them longer.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/waitfor"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "walhook-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "walhook")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build walhook: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

const token = "process-test-token-0123456789"

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// env is the configuration of a walhook process: the test's settings over
// a clean environment (no WALHOOK_* leaking in from the caller).
func env(dsn string, extra map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WALHOOK_") {
			out = append(out, kv)
		}
	}
	settings := map[string]string{
		"WALHOOK_DATABASE_URL":                    dsn,
		"WALHOOK_AUTH_TOKENS":                     token,
		"WALHOOK_DELIVERY_ALLOW_PRIVATE_NETWORKS": "true",
		"WALHOOK_REPLICATION_STATUS_INTERVAL":     "100ms",
		"WALHOOK_LOG_LEVEL":                       "info",
	}
	for k, v := range extra {
		settings[k] = v
	}
	for k, v := range settings {
		out = append(out, k+"="+v)
	}
	return out
}

// run runs a walhook command to completion and returns its stdout.
func run(t *testing.T, environ []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = environ
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("walhook %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// proc is one `walhook serve` child process.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	log   string
	admin string
	done  chan struct{}
}

// serve starts walhook and waits until it is ready.
func serve(t *testing.T, environ []string) *proc {
	t.Helper()
	admin := freeAddr(t)
	environ = append(append([]string(nil), environ...), "WALHOOK_LISTEN="+freeAddr(t), "WALHOOK_ADMIN_LISTEN="+admin)
	logf, err := os.CreateTemp(t.TempDir(), "walhook-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: exec.Command(binary, "serve"), log: logf.Name(), admin: admin, done: make(chan struct{})}
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// If the test binary dies (a timeout), walhook must not outlive it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("walhook exited before it was ready:\n%s", p.tail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("walhook not ready after 30s:\n%s", p.tail())
		}
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM and returns how long the process took to exit.
func (p *proc) terminate(limit time.Duration) time.Duration {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start)
	case <-time.After(limit):
		p.t.Fatalf("walhook still running %s after SIGTERM:\n%s", limit, p.tail())
		return 0
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// sink is a webhook receiver that counts requests per event (the payload's
// "n") and per webhook-id.
type sink struct {
	srv    *httptest.Server
	handle func(w http.ResponseWriter, r *http.Request, n int) // nil: 200

	mu       sync.Mutex
	requests int
	ids      map[int]map[string]int // n → webhook-id → requests
}

func newSink(t *testing.T) *sink {
	s := &sink{ids: map[int]map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Data struct{ N int } `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("receiver: bad body %q", body)
		}
		s.mu.Lock()
		s.requests++
		if s.ids[env.Data.N] == nil {
			s.ids[env.Data.N] = map[string]int{}
		}
		s.ids[env.Data.N][r.Header.Get("webhook-id")]++
		h := s.handle
		s.mu.Unlock()
		if h != nil {
			h(w, r, env.Data.N)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// check compares what arrived with the committed outbox rows: every row
// arrived, and re-sends of one event all carried the same webhook-id. It
// returns the number of duplicate requests.
func (s *sink) check(t *testing.T, committed []int) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	missing := 0
	for _, n := range committed {
		ids := s.ids[n]
		switch {
		case len(ids) == 0:
			if missing++; missing <= 10 {
				t.Errorf("event n=%d was committed but never delivered", n)
			}
		case len(ids) > 1:
			t.Errorf("event n=%d arrived under %d different webhook-ids: %v", n, len(ids), ids)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d committed events lost", missing, len(committed))
	}
	if extra := len(s.ids) - len(committed); extra > 0 {
		t.Errorf("%d events arrived that were never committed", extra)
	}
	return s.requests - len(s.ids)
}

// setup migrates the database and subscribes rcv to every event type, with
// the CLI of the binary under test.
func setup(t *testing.T, environ []string, rcv *sink) {
	t.Helper()
	run(t, environ, "migrate")
	out := run(t, environ, "endpoint", "create", "--url", rcv.srv.URL, "--events", "*")
	var ep struct{ ID, Secret string }
	if err := json.Unmarshal(out, &ep); err != nil || ep.Secret == "" {
		t.Fatalf("endpoint create printed %q: %v", out, err)
	}
}

// produce inserts events n = from..to-1 in transactions of batch rows, with
// pause between transactions, reconnecting after errors (a transaction that
// failed may or may not have committed: committedEvents reads the truth).
func produce(ctx context.Context, t *testing.T, dsn string, from, to, batch int, pause time.Duration) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for n := from; n < to && ctx.Err() == nil; n += batch {
		if conn == nil {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				n -= batch
				continue
			}
			conn = c
		}
		_, err := conn.Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload)
			SELECT 'order.created', jsonb_build_object('n', g) FROM generate_series($1::int, $2::int) g`, n, min(n+batch, to)-1)
		if err != nil {
			conn.Close(context.Background())
			conn = nil
		}
		time.Sleep(pause)
	}
}

func committedEvents(t *testing.T, dsn string) []int {
	t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(t, dsn)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT (payload->>'n')::int FROM webhook_outbox ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func statusCounts(t *testing.T, dsn string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(t, dsn)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT status, count(*) FROM walhook.deliveries GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// TestKillNineRepeatedlyLosesNothing kills walhook with SIGKILL again and
// again while events are committed: with its records beside the outbox, in
// a database of their own, and with a read-ahead small enough that every
// catch-up goes through its spill file. Every event arrives, and every
// delivery ends recorded as delivered.
func TestKillNineRepeatedlyLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stateAside bool // database.state_url: the records in a database of their own
		spilling   bool // a read-ahead of 64 KiB: each catch-up after a kill goes through its spill file
	}{
		{name: "one database"},
		{name: "records in a state database", stateAside: true},
		{name: "read-ahead spilling to its file", spilling: true},
	} {
		t.Run(tc.name, func(t *testing.T) { killNineRepeatedly(t, tc.stateAside, tc.spilling) })
	}
}

func killNineRepeatedly(t *testing.T, stateAside, spilling bool) {
	events, kills := envInt("WALHOOK_TEST_CRASH_EVENTS", 20000), envInt("WALHOOK_TEST_CRASH_KILLS", 5)
	db := pgtest.New(t)
	rcv := newSink(t)
	recordsDSN := db.DSN
	extra := map[string]string{}
	if stateAside {
		recordsDSN = pgtest.New(t).DSN
		extra["WALHOOK_DATABASE_STATE_URL"] = recordsDSN
	}
	if spilling {
		extra["WALHOOK_REPLICATION_READ_AHEAD_BYTES"] = "65536"
		extra["WALHOOK_REPLICATION_SPILL_DIR"] = t.TempDir()
	}
	environ := env(db.DSN, extra)
	setup(t, environ, rcv)

	p := serve(t, environ)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan struct{})
	// Spread the events over the kills so every restart lands mid-stream.
	pause := time.Duration(kills) * 1200 * time.Millisecond / time.Duration(events/50)
	go func() { defer close(produced); produce(ctx, t, db.DSN, 0, events, 50, pause) }()
	var spilled float64 // by the processes killed, as last scraped
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(700+200*i%500) * time.Millisecond)
		spilled += p.spilledBytes()
		p.kill()
		t.Logf("kill -9 #%d at %d distinct events received", i+1, rcv.distinct())
		p = serve(t, environ)
	}
	<-produced
	committed := committedEvents(t, db.DSN)
	if len(committed) != events {
		t.Fatalf("producer committed %d events, want %d", len(committed), events)
	}
	waitfor.True(t, "every committed event at the receiver", 2*time.Minute, func() bool { return rcv.distinct() >= len(committed) })
	dups := rcv.check(t, committed)
	waitfor.True(t, "every delivery recorded as delivered", time.Minute, func() bool { return statusCounts(t, recordsDSN)["delivered"] == events })
	t.Logf("%d events, %d kills: 0 lost, %d duplicate requests (same webhook-id), %.2f%%", events, kills, dups, 100*float64(dups)/float64(events))
	if spilled += p.spilledBytes(); spilling && spilled == 0 {
		t.Error("no catch-up went through the read-ahead's file")
	}
	p.terminate(30 * time.Second)
}

func TestPostgresRestartMidStream(t *testing.T) {
	c := pgtest.NewCluster(t, nil)
	dsn := c.DSN("postgres")
	rcv := newSink(t)
	environ := env(dsn, nil)
	setup(t, environ, rcv)
	p := serve(t, environ)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan struct{})
	go func() { defer close(produced); produce(ctx, t, dsn, 0, 5000, 25, 3*time.Millisecond) }()
	waitfor.True(t, "the stream to be under way", 30*time.Second, func() bool { return rcv.distinct() > 500 })
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if err := c.Restart(rctx, "fast"); err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres restarted (fast) at %d distinct events received", rcv.distinct())
	<-produced
	committed := committedEvents(t, dsn)
	waitfor.True(t, "every committed event after the restart", 2*time.Minute, func() bool { return rcv.distinct() >= len(committed) })
	dups := rcv.check(t, committed)
	waitfor.True(t, "walhook ready again", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	t.Logf("%d committed events across a Postgres restart: 0 lost, %d duplicate requests", len(committed), dups)
	p.terminate(30 * time.Second)
}

func TestSIGTERMFinishesOrPersistsInFlightAttempts(t *testing.T) {
	db := pgtest.New(t)
	rcv := newSink(t)
	release := make(chan struct{})
	var answered sync.Map // webhook-id → true once answered 200
	rcv.handle = func(w http.ResponseWriter, r *http.Request, n int) {
		if n%2 == 0 {
			time.Sleep(300 * time.Millisecond) // finishes within the grace period
			_, _ = io.WriteString(w, "ok")
			answered.Store(r.Header.Get("webhook-id"), true)
			return
		}
		select { // hangs past the grace period
		case <-release:
			_, _ = io.WriteString(w, "ok")
		case <-r.Context().Done():
		}
	}
	environ := env(db.DSN, map[string]string{
		"WALHOOK_SHUTDOWN_TIMEOUT":           "3s",
		"WALHOOK_DELIVERY_ENDPOINT_INFLIGHT": "64",
		"WALHOOK_DELIVERY_TIMEOUT":           "30s",
	})
	setup(t, environ, rcv)
	p := serve(t, environ)
	produce(context.Background(), t, db.DSN, 0, 40, 40, 0)
	waitfor.True(t, "40 requests in flight or answered", 30*time.Second, func() bool { return rcv.distinct() == 40 })

	took := p.terminate(10 * time.Second)
	if took > 3*time.Second+time.Second {
		t.Errorf("walhook took %s to exit after SIGTERM; shutdown_timeout is 3s", took)
	}
	t.Logf("exited %s after SIGTERM with 20 attempts hanging", took.Round(time.Millisecond))

	// Answered attempts are recorded as delivered; cut ones as retrying
	// (due at once, not counted as attempts); none is left pending.
	ctx := context.Background()
	conn := pgtest.Connect(t, db.DSN)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT id, status, attempts, coalesce(last_error, '') FROM walhook.deliveries`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id, status, lastErr string
		attempts            int
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.status, &x.attempts, &x.lastErr)
	})
	if err != nil || len(all) != 40 {
		t.Fatalf("deliveries: %d, %v", len(all), err)
	}
	for _, d := range all {
		_, ok := answered.Load(d.id)
		switch {
		case ok && d.status != "delivered":
			t.Errorf("delivery %s was answered 200 before the exit but is %s", d.id, d.status)
		case !ok && (d.status != "retrying" || d.attempts != 0 || !strings.Contains(d.lastErr, "interrupted")):
			t.Errorf("delivery %s was cut by the shutdown: %s, %d attempts, %q; want retrying, 0, interrupted", d.id, d.status, d.attempts, d.lastErr)
		}
	}

	// The next start sends the interrupted ones again.
	close(release)
	p = serve(t, environ)
	waitfor.True(t, "all 40 delivered after the restart", 30*time.Second, func() bool { return statusCounts(t, db.DSN)["delivered"] == 40 })
	p.terminate(10 * time.Second)
}

func TestFailuresThenSuccessEndDeliveredWithExactAttempts(t *testing.T) {
	db := pgtest.New(t)
	rcv := newSink(t)
	var mu sync.Mutex
	seen := map[int]int{} // event n → requests so far
	rcv.handle = func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		seen[n]++
		attempt := seen[n]
		mu.Unlock()
		if attempt <= n%4 { // event n fails its first n%4 attempts
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}
	environ := env(db.DSN, map[string]string{
		"WALHOOK_DELIVERY_RETRY_SCHEDULE":           "100ms",
		"WALHOOK_DELIVERY_RETRY_JITTER":             "0",
		"WALHOOK_DELIVERY_CIRCUIT_BREAKER_FAILURES": "0",
	})
	setup(t, environ, rcv)
	p := serve(t, environ)
	produce(context.Background(), t, db.DSN, 0, 200, 50, 0)
	waitfor.True(t, "all 200 delivered", time.Minute, func() bool { return statusCounts(t, db.DSN)["delivered"] == 200 })

	ctx := context.Background()
	conn := pgtest.Connect(t, db.DSN)
	defer conn.Close(context.Background())
	var wrong int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM walhook.deliveries d JOIN walhook.events e ON e.id = d.event_id
		WHERE d.attempts <> (e.payload->>'n')::int % 4 + 1
		   OR d.attempts <> (SELECT count(*) FROM walhook.attempt_log a WHERE a.delivery_id = d.id)`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d deliveries with an attempt count other than their failures + 1, or an attempt log of another length", wrong)
	}
	p.terminate(10 * time.Second)
}

// spilledBytes is walhook_replication_spilled_bytes_total as the process
// reports it now; 0 when it cannot be read (a process still starting).
func (p *proc) spilledBytes() float64 {
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "walhook_replication_spilled_bytes_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}
